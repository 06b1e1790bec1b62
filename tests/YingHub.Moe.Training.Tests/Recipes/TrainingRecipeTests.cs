using System.Collections;
using System.Reflection;
using System.Text.Json.Nodes;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Recipes;
using YingHub.Moe.Training.Routing;
using YingHub.Moe.Training.Schedules;

namespace YingHub.Moe.Training.Tests.Recipes;

public class TrainingRecipeTests
{
    /// <summary>Settings that have no key of their own, each with the reason.</summary>
    private static readonly Dictionary<string, string> WithoutKey = new()
    {
        [nameof(TrainerOptions.Schedule)] = "a code-only schedule object; files name their schedule in 'schedule' (LearningRateSchedule)",
    };

    public static TheoryData<string> TrainerSettings() => new(Settable(typeof(TrainerOptions)).Select(p => p.Name).Where(n => !WithoutKey.ContainsKey(n)));

    public static TheoryData<string> ModelSettings() => new(Settable(typeof(MoeModelOptions)).Select(p => p.Name));

    [Theory]
    [MemberData(nameof(TrainerSettings))]
    public void Every_trainer_setting_survives_a_config_file(string name)
    {
        // walks TrainerOptions by reflection: a new setting without a config key fails here
        var property = typeof(TrainerOptions).GetProperty(name)!;
        var options = new TrainerOptions();
        object? before = property.GetValue(options);
        object changed = Sample(property.PropertyType, before);
        property.SetValue(options, changed);

        var json = new TrainingRecipe { Trainer = options }.ToJson();
        var back = TrainingRecipe.FromJson(JsonNode.Parse(json.ToJsonString())!.AsObject());

        AssertSame(changed, property.GetValue(back.Trainer), name);
    }

    [Theory]
    [MemberData(nameof(ModelSettings))]
    public void Every_model_setting_survives_a_config_file(string name)
    {
        var property = typeof(MoeModelOptions).GetProperty(name)!;
        var options = new MoeModelOptions();
        object changed = Sample(property.PropertyType, property.GetValue(options));
        property.SetValue(options, changed);

        var json = new TrainingRecipe { Model = options }.ToJson();
        var back = TrainingRecipe.FromJson(JsonNode.Parse(json.ToJsonString())!.AsObject());

        AssertSame(changed, property.GetValue(back.Model), name);
    }

    [Fact]
    public void A_model_section_changes_the_named_preset_and_records_which_keys_it_gave()
    {
        var recipe = TrainingRecipe.Parse("""{ "model": { "preset": "makemoe", "hidden_dropout": 0.25, "num_local_experts": 4 } }""");
        Assert.Equal("makemoe", recipe.Preset);
        Assert.Equal(0.25, recipe.Model!.Dropout);
        Assert.Equal(4, recipe.Model.NumExperts);
        Assert.Equal(128, recipe.Model.HiddenSize); // makemoe's n_embed, not the default's
        Assert.Equal(InitScheme.KaimingNormal, recipe.Model.Init);
        Assert.Equal(new HashSet<string> { "hidden_dropout", "num_local_experts" }, recipe.GivenModelKeys);
    }

    [Fact]
    public void A_model_section_can_be_the_path_of_a_whole_config_json()
    {
        string dir = Directory.CreateTempSubdirectory("recipe").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "config.json"), """{ "vocab_size": 50, "hidden_size": 96, "num_attention_heads": 3, "hidden_act": "SwiGlu" }""");
            File.WriteAllText(Path.Combine(dir, "run.json"), """{ "model": "config.json", "trainer": { "steps": 7 } }""");
            var recipe = TrainingRecipe.Load(Path.Combine(dir, "run.json"));
            Assert.Null(recipe.Preset);
            Assert.Equal((50, 96, 3, ExpertActivation.SwiGlu), (recipe.Model!.VocabSize, recipe.Model.HiddenSize, recipe.Model.NumHeads, recipe.Model.Activation));
            Assert.Contains("vocab_size", recipe.GivenModelKeys);
            Assert.Equal(7, recipe.Trainer.Steps);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData("""{ "steps": 5 }""", "unknown key 'steps'; the allowed keys are data, tokenizer, block_size, init_from, objective, model, trainer, tracking (did you mean trainer.steps?).")]
    [InlineData("""{ "trainer": { "lr": 0.1 } }""", "trainer: unknown key 'lr'; the allowed keys are steps, batch_size, gradient_accumulation, learning_rate,")]
    [InlineData("""{ "trainer": { "early_stopping": { "patient": 3 } } }""", "trainer.early_stopping: unknown key 'patient'; the allowed keys are patience, min_delta, restore_best_weights.")]
    [InlineData("""{ "trainer": { "module_gradient_clip": { "groups": [ { "max": 1 } ] } } }""", "trainer.module_gradient_clip.groups[0]: unknown key 'max'; the allowed keys are name, name_contains, max_norm.")]
    [InlineData("""{ "model": { "n_embd": 64 } }""", "model: unknown key 'n_embd'; the allowed keys are vocab_size, max_position_embeddings, hidden_size,")]
    [InlineData("""{ "model": { "n_embd": 64 } }""", ", preset.")]
    [InlineData("""{ "model": { "preset": "huge" } }""", "model.preset 'huge' is not one of tiny, makemoe, yinghub-v2")]
    [InlineData("""{ "trainer": { "steps": "ten" } }""", "trainer.steps must be an integer; got \"ten\".")]
    [InlineData("""{ "trainer": { "steps": 1.5 } }""", "trainer.steps must be an integer; got 1.5.")]
    [InlineData("""{ "trainer": { "precision": "fp8" } }""", "trainer.precision must be one of \"fp32\", \"bf16\", \"fp16\"; got \"fp8\".")]
    [InlineData("""{ "trainer": { "freeze": null } }""", "trainer.freeze must be an array of strings; got null.")]
    [InlineData("""{ "trainer": { "gradient_clip_schedule": [[0, 1], [0, 2]] } }""", "trainer.gradient_clip_schedule must be")]
    [InlineData("""{ "model": { "hidden_act": "Tanh" } }""", "model.hidden_act must be one of \"Relu\", \"Gelu\", \"SwiGlu\"; got \"Tanh\".")]
    [InlineData("""{ "trainer": 3 }""", "trainer must be a JSON object of settings; got 3.")]
    [InlineData("""{ "block_size": "long" }""", "block_size must be an integer; got \"long\".")]
    [InlineData("""[1, 2]""", "a recipe must be a JSON object of settings; got array.")]
    [InlineData("""{ "data": "a", "data": "b" }""", "not valid JSON")]
    [InlineData("""{ "trainer": """, "not valid JSON")]
    public void Bad_files_are_one_error_naming_the_key(string json, string expected)
    {
        var ex = Assert.Throws<InvalidDataException>(() => TrainingRecipe.Parse(json));
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Notes_are_skipped_in_every_section()
    {
        var recipe = TrainingRecipe.Parse("""{ "_source": "x", "model": { "_comment": "y", "preset": "tiny" }, "trainer": { "_why": 1, "steps": 3 } }""");
        Assert.Equal(3, recipe.Trainer.Steps);
        Assert.Empty(recipe.GivenModelKeys);
    }

    [Fact]
    public void Problems_name_the_key_path_of_each_bad_setting()
    {
        var recipe = TrainingRecipe.Parse("""
            { "model": { "num_local_experts": 0 },
              "trainer": { "learning_rate": 20, "module_gradient_clip": { "other_max_norm": 0 }, "schedule": { "kind": "two_stage", "milestone_step": 50 }, "steps": 40 },
              "block_size": 0 }
            """);
        var problems = recipe.GetProblems();
        Assert.True(problems.Count >= 4, string.Join(" | ", problems));
        Assert.Contains(problems, p => p.StartsWith("model.num_local_experts = 0 is invalid", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("trainer.learning_rate = 20 is invalid; allowed: (0, 10]", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.StartsWith("trainer.module_gradient_clip.other_max_norm = 0 is invalid", StringComparison.Ordinal));
        Assert.Contains("block_size = 0 is invalid; allowed: >= 1.", problems);

        var late = TrainingRecipe.Parse("""{ "trainer": { "schedule": { "kind": "two_stage", "milestone_step": 50 }, "steps": 40, "warmup_steps": 2 } }""");
        Assert.Contains(late.GetProblems(), p => p.StartsWith("trainer.schedule = TwoStage is invalid", StringComparison.Ordinal) && p.Contains("TotalSteps", StringComparison.Ordinal));
    }

    [Fact]
    public void A_code_only_schedule_object_cannot_be_written_as_a_file()
    {
        var recipe = new TrainingRecipe { Trainer = new TrainerOptions { Schedule = new ConstantSchedule(0.1) } };
        var ex = Assert.Throws<InvalidOperationException>(() => recipe.ToJson());
        Assert.Contains("LearningRateSchedule", ex.Message);
    }

    [Fact]
    public void Named_schedules_follow_the_trainers_rate_warmup_and_length()
    {
        // peak 1.0, min 0.1, warmup 2, 10 steps; the values below are the closed forms written out by hand
        TrainerOptions Run(string schedule) => TrainingRecipe.Parse(
            $$"""{ "trainer": { "steps": 10, "learning_rate": 1.0, "min_learning_rate": 0.1, "warmup_steps": 2, "schedule": {{schedule}} } }""").Trainer;
        static double Cos(double min, double peak, double t) => min + (peak - min) * (1 + Math.Cos(Math.PI * t)) / 2;

        var cosine = Run("""{ "kind": "warmup_cosine" }""").CreateSchedule();
        Assert.Equal(0.5, cosine.At(0), 12); // (0 + 1) / 2
        Assert.Equal(Cos(0.1, 1.0, 3 / 8.0), cosine.At(5), 12);
        Assert.Equal(0.1, cosine.At(10), 12);

        var constant = Run("""{ "kind": "constant" }""").CreateSchedule();
        Assert.Equal(0.5, constant.At(0), 12);
        Assert.Equal(1.0, constant.At(2), 12);
        Assert.Equal(1.0, constant.At(9), 12);

        // SGDR with T_0 = 3, T_mult = 2: cycles of 3 and 6 steps after warmup, restarts at steps 5 and 11
        var sgdr = Run("""{ "kind": "sgdr", "t0": 3, "t_mult": 2 }""").CreateSchedule();
        Assert.Equal(1.0, sgdr.At(2), 12);
        Assert.Equal(Cos(0.1, 1.0, 2 / 3.0), sgdr.At(4), 12);
        Assert.Equal(1.0, sgdr.At(5), 12);
        Assert.Equal(Cos(0.1, 1.0, 4 / 6.0), sgdr.At(9), 12);

        // without t0, one cycle over the run after warmup: the plain cosine
        var single = Run("""{ "kind": "sgdr" }""").CreateSchedule();
        Assert.Equal(Cos(0.1, 1.0, 3 / 8.0), single.At(5), 12);

        // two stages: 1.0 -> 0.1 by the milestone (step 6), then 0.5 -> 0.05 by step 10
        var twoStage = Run("""{ "kind": "two_stage", "milestone_step": 6, "second_peak_learning_rate": 0.5, "second_min_learning_rate": 0.05 }""").CreateSchedule();
        Assert.Equal(Cos(0.1, 1.0, 2 / 4.0), twoStage.At(4), 12);
        Assert.Equal(0.5, twoStage.At(6), 12);
        Assert.Equal(Cos(0.05, 0.5, 2 / 4.0), twoStage.At(8), 12);
    }

    [Fact]
    public void A_piecewise_schedule_is_its_list_of_knots()
    {
        var recipe = TrainingRecipe.Parse("""{ "trainer": { "gradient_clip_schedule": [[0, 1.0], [0.5, 2.0], [1, 2.5]] } }""");
        var clip = recipe.Trainer.GradientClipSchedule!;
        Assert.Equal([(0.0, 1.0), (0.5, 2.0), (1.0, 2.5)], clip.Knots);
        Assert.Equal(1.5, clip.At(0.25), 12);
        Assert.Equal("[[0,1],[0.5,2],[1,2.5]]", recipe.ToJson()["trainer"]!["gradient_clip_schedule"]!.ToJsonString());
    }

    [Fact]
    public void The_yinghub_v2_recipe_gives_its_trainer_options_field_by_field()
    {
        var recipe = TrainingRecipe.Load(Recipe("yinghub-v2.json"));
        var t = recipe.Trainer;
        Assert.Equal(("tinyshakespeare", "char", 128, "yinghub-v2"), (recipe.Data, recipe.Tokenizer, recipe.BlockSize, recipe.Preset));
        Assert.Equal((1000, 16, 0.002, 0.0002, 0), (t.Steps, t.BatchSize, t.LearningRate, t.MinLearningRate, t.WarmupSteps));
        Assert.Equal((0.9, 0.95, 0.1), (t.Beta1, t.Beta2, t.WeightDecay));
        var s = t.LearningRateSchedule;
        Assert.Equal((LearningRateScheduleKind.TwoStage, 323L, 0.002, 0.0004), (s.Kind, s.MilestoneStep, s.SecondPeakLearningRate, s.SecondMinLearningRate));
        var clip = t.ModuleGradientClip!;
        Assert.Equal(2, clip.Groups.Count);
        Assert.Equal(("router", 0.5), (clip.Groups[0].Name, clip.Groups[0].MaxNorm));
        Assert.Equal(["block_sparse_moe.gate"], clip.Groups[0].NameContains);
        Assert.Equal(("experts", 2.0), (clip.Groups[1].Name, clip.Groups[1].MaxNorm));
        Assert.Equal(["block_sparse_moe.experts", "block_sparse_moe.deep_experts", "block_sparse_moe.shared_expert"], clip.Groups[1].NameContains);
        Assert.Equal(1.0, clip.OtherMaxNorm);
        Assert.Equal([(0.0, 1.0), (0.5, 2.0), (1.0, 2.5)], t.GradientClipSchedule!.Knots);
        Assert.Equal((0L, 0.20, 0.05), (t.TokenMasking!.MaskTokenId, t.TokenMasking.StartProbability, t.TokenMasking.EndProbability));
        Assert.Equal((5, 0.01, false), (t.EarlyStopping!.Patience, t.EarlyStopping.MinDelta, t.EarlyStopping.RestoreBestWeights));
        var k = t.AdaptiveTopK!;
        Assert.Equal((0.95, 0.8, 2, 6, 0), (k.High, k.Low, k.MinK, k.MaxK, k.Cooldown));
        Assert.Equal((100, 20, 10), (t.EvalInterval, t.EvalBatches, t.LogInterval));
        var m = recipe.Model!;
        Assert.Equal((0.0, 0.04, 500, 0.1), (m.LoadBalancingCoef, m.UtilizationKlCoef, m.UtilizationWindow, m.UtilizationThreshold));
        Assert.Equal((192, 8, 6, 2, RouterKind.NoisyTopK), (m.HiddenSize, m.NumLayers, m.NumExperts, m.DeepExperts, m.Router));
        Assert.Empty(recipe.GetProblems());
        // MoE.py's two stages, scaled: 2e-3 -> 2e-4 by step 323, then 2e-3 -> 4e-4 by step 1000
        var schedule = t.CreateSchedule();
        Assert.Equal(0.002, schedule.At(0), 12);
        Assert.Equal(0.0002 + 0.0018 * (1 + Math.Cos(Math.PI * 100 / 323.0)) / 2, schedule.At(100), 12);
        Assert.Equal(0.002, schedule.At(323), 12);
        Assert.Equal(0.0004, schedule.At(1000), 12);
    }

    [Fact]
    public void The_makemoe_recipe_gives_its_trainer_options_field_by_field()
    {
        var recipe = TrainingRecipe.Load(Recipe("makemoe.json"));
        var t = recipe.Trainer;
        Assert.Equal(("tinyshakespeare", "char", 32, "makemoe"), (recipe.Data, recipe.Tokenizer, recipe.BlockSize, recipe.Preset));
        Assert.Equal((5000, 16, 0.001, 0), (t.Steps, t.BatchSize, t.LearningRate, t.WarmupSteps));
        Assert.Equal(LearningRateScheduleKind.Constant, t.LearningRateSchedule.Kind);
        Assert.Equal((0.01, 0.9, 0.999), (t.WeightDecay, t.Beta1, t.Beta2));
        Assert.Null(t.GradientClip);
        Assert.Null(t.GradientClipSchedule);
        Assert.Null(t.ModuleGradientClip);
        Assert.Equal((100, 400, 1337L), (t.EvalInterval, t.EvalBatches, t.Seed));
        Assert.Empty(recipe.GetProblems());
        Assert.Equal(0.001, t.CreateSchedule().At(4321), 12);
    }

    [Fact]
    public void Key_paths_follow_the_serializers_contract_through_nested_options()
    {
        Assert.Equal("module_gradient_clip.other_max_norm", OptionsJson.KeyOf(typeof(TrainerOptions), "ModuleGradientClip.OtherMaxNorm", OptionsJson.SnakeCase));
        Assert.Equal("fused_adamw", OptionsJson.KeyOf(typeof(TrainerOptions), "FusedAdamW", OptionsJson.SnakeCase));
        Assert.Equal("schedule.t_mult", OptionsJson.KeyOf(typeof(TrainerOptions), "LearningRateSchedule.TMult", OptionsJson.SnakeCase));
        Assert.Equal("num_local_experts", OptionsJson.KeyOf(typeof(MoeModelOptions), "NumExperts", OptionsJson.ModelConfig));
        Assert.Equal("HeadDim", OptionsJson.KeyOf(typeof(MoeModelOptions), "HeadDim", OptionsJson.ModelConfig)); // computed: no key
    }

    private static string Recipe(string file)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string path = Path.Combine(dir.FullName, "samples", "recipes", file);
            if (File.Exists(path)) return path;
        }

        throw new FileNotFoundException($"samples/recipes/{file} not found above {AppContext.BaseDirectory}.");
    }

    private static IEnumerable<PropertyInfo> Settable(Type type) =>
        type.GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite && p.SetMethod!.IsPublic);

    /// <summary>A value of <paramref name="type"/> other than <paramref name="current"/> (hand-picked per type, not from the code under test).</summary>
    private static object Sample(Type type, object? current)
    {
        Type t = Nullable.GetUnderlyingType(type) ?? type;
        if (t == typeof(int)) return (int?)current == 7 ? 8 : 7;
        if (t == typeof(long)) return (long?)current == 7 ? 8L : 7L;
        if (t == typeof(double)) return (double?)current == 0.375 ? 0.25 : 0.375;
        if (t == typeof(bool)) return !((bool?)current ?? false);
        if (t == typeof(string)) return "sample/path";
        if (t.IsEnum)
        {
            var values = Enum.GetValues(t).Cast<object>().ToArray();
            return values.First(v => !v.Equals(current));
        }

        if (t == typeof(List<string>)) return new List<string> { "layers.0.*", "lm_head" };
        if (t == typeof(PiecewiseLinearSchedule)) return new PiecewiseLinearSchedule([(0.0, 3.0), (1.0, 4.0)]);
        if (t == typeof(LearningRateScheduleOptions)) return new LearningRateScheduleOptions { Kind = LearningRateScheduleKind.Sgdr, T0 = 5, TMult = 3 };
        if (t == typeof(GradientClipOptions)) return new GradientClipOptions { OtherMaxNorm = 0.75, Groups = [new GradientClipGroup { Name = "g", NameContains = ["x"], MaxNorm = 3 }] };
        if (t == typeof(TopKControllerOptions)) return new TopKControllerOptions { High = 0.8, Low = 0.3, MinK = 1, MaxK = 3, Cooldown = 9 };
        if (t == typeof(DynamicLossScalerOptions)) return new DynamicLossScalerOptions { InitialScale = 1024, GrowthFactor = 3, BackoffFactor = 0.25, GrowthInterval = 50 };
        if (t == typeof(TokenMaskingOptions)) return new TokenMaskingOptions { MaskTokenId = 3, StartProbability = 0.4, EndProbability = 0.1 };
        if (t == typeof(EarlyStoppingOptions)) return new EarlyStoppingOptions { Patience = 2, MinDelta = 0.01, RestoreBestWeights = false };
        throw new InvalidOperationException($"No sample value for {type}: add one here for the new setting.");
    }

    /// <summary>Equal by value: public properties of options objects, knots of schedules, items of lists.</summary>
    private static void AssertSame(object? expected, object? actual, string path)
    {
        if (expected is null || actual is null)
        {
            Assert.True(expected is null && actual is null, $"{path}: expected {expected ?? "null"}, got {actual ?? "null"}");
            return;
        }

        Type t = expected.GetType();
        if (t.IsPrimitive || t.IsEnum || t == typeof(string) || t == typeof(decimal))
        {
            Assert.True(expected.Equals(actual), $"{path}: expected {expected}, got {actual}");
        }
        else if (expected is PiecewiseLinearSchedule schedule)
        {
            Assert.Equal(schedule.Knots, ((PiecewiseLinearSchedule)actual).Knots);
        }
        else if (expected is IEnumerable list)
        {
            var e = list.Cast<object?>().ToArray();
            var a = ((IEnumerable)actual).Cast<object?>().ToArray();
            Assert.True(e.Length == a.Length, $"{path}: expected {e.Length} items, got {a.Length}");
            for (int i = 0; i < e.Length; i++) AssertSame(e[i], a[i], $"{path}[{i}]");
        }
        else
        {
            foreach (var p in Settable(t)) AssertSame(p.GetValue(expected), p.GetValue(actual), $"{path}.{p.Name}");
        }
    }
}
