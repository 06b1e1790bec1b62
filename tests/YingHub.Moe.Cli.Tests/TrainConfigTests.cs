using System.CommandLine;
using System.Text.Json.Nodes;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Training;
using YingHub.Moe.Training.Recipes;
using YingHub.Moe.Training.Schedules;

namespace YingHub.Moe.Cli.Tests;

/// <summary>The settings of <c>yinghub train</c>: the real command's flags over a config file over the defaults.</summary>
public class TrainConfigTests
{
    private static ParseResult Flags(params string[] args)
    {
        var parse = TrainCommand.Create().Parse(args);
        Assert.True(parse.Errors.Count == 0, string.Join(" ", parse.Errors.Select(e => e.Message)));
        return parse;
    }

    private static TrainingRecipe Settings(string? file, params string[] args)
    {
        var parse = Flags(args);
        var json = file is null ? null : TrainingRecipe.ParseJson(file);
        return TrainConfig.Recipe(TrainConfig.Merge(json, parse, progressBar: false), "run.json", null, parse);
    }

    [Fact]
    public void A_config_file_sets_model_and_trainer_keys_and_flags_override_them()
    {
        const string file = """
            { "data": "corpus.txt", "tokenizer": "gpt2", "block_size": 32,
              "model": { "preset": "makemoe", "hidden_dropout": 0.2, "num_local_experts": 4 },
              "trainer": { "steps": 50, "batch_size": 4, "learning_rate": 0.001, "precision": "bf16", "seed": 7, "checkpoint_directory": "runs/x",
                           "schedule": { "kind": "sgdr", "t0": 10 }, "early_stopping": { "patience": 3 } } }
            """;
        var fromFile = Settings(file);
        Assert.Equal(("corpus.txt", "gpt2", 32, "makemoe"), (fromFile.Data, fromFile.Tokenizer, fromFile.BlockSize, fromFile.Preset));
        Assert.Equal((0.2, 4, 128), (fromFile.Model!.Dropout, fromFile.Model.NumExperts, fromFile.Model.HiddenSize));
        var t = fromFile.Trainer;
        Assert.Equal((50, 4, 0.001, TrainingPrecision.Bf16, 7L, "runs/x"), (t.Steps, t.BatchSize, t.LearningRate, t.Precision, t.Seed, t.CheckpointDirectory));
        Assert.Equal((LearningRateScheduleKind.Sgdr, 10L), (t.LearningRateSchedule.Kind, t.LearningRateSchedule.T0));
        Assert.Equal(3, t.EarlyStopping!.Patience);

        var merged = Settings(file, "--steps", "9", "--lr", "0.5", "--amp", "fp16", "--out", "runs/y", "--dropout", "0", "--preset", "tiny", "--block", "16");
        var m = merged.Trainer;
        Assert.Equal((9, 4, 0.5, TrainingPrecision.Fp16, 7L, "runs/y"), (m.Steps, m.BatchSize, m.LearningRate, m.Precision, m.Seed, m.CheckpointDirectory));
        Assert.Equal(("tiny", 16, 0.0, 0.0, 4), (merged.Preset, merged.BlockSize, merged.Model!.Dropout, merged.Model.AttentionDropout, merged.Model.NumExperts));
        Assert.Equal(3, m.EarlyStopping!.Patience); // what the flags do not name stays as the file says
    }

    [Fact]
    public void Without_a_file_or_flags_the_defaults_apply_and_follow_the_run_length()
    {
        var s = Settings(null);
        Assert.Equal(("tinyshakespeare", "char", null, "tiny"), (s.Data, s.Tokenizer, s.BlockSize, s.Preset));
        var t = s.Trainer;
        Assert.Equal((1000, 32, 2e-3, 2e-4, 50), (t.Steps, t.BatchSize, t.LearningRate, t.MinLearningRate, t.WarmupSteps));
        Assert.Equal((100, 8, 10, 500, 10.0), (t.EvalInterval, t.EvalBatches, t.LogInterval, t.CheckpointInterval, t.CheckpointIntervalMinutes));
        Assert.Equal((1337L, Path.Combine("runs", "train"), TrainingPrecision.Fp32), (t.Seed, t.CheckpointDirectory, t.Precision));
        Assert.Equal((Path.Combine("runs", "train") + ".cache", "train", 10), (s.Tracking!.RunDirectory, s.Tracking.RunName, s.Tracking.PlotInterval));

        var shortRun = Settings(null, "--steps", "40", "--lr", "0.01").Trainer;
        Assert.Equal((0.001, 2, 40, 10, 40), (shortRun.MinLearningRate, shortRun.WarmupSteps, shortRun.EvalInterval, shortRun.LogInterval, shortRun.CheckpointInterval));
        var fromFile = Settings("""{ "trainer": { "steps": 40, "warmup_steps": 7, "eval_interval": 5 } }""").Trainer;
        Assert.Equal((7, 5), (fromFile.WarmupSteps, fromFile.EvalInterval)); // given values are not derived
    }

    [Fact]
    public void Out_moves_the_metrics_with_the_checkpoint_even_over_a_printed_configuration()
    {
        var s = Settings("""{ "trainer": { "checkpoint_directory": "runs/x" }, "tracking": { "run_directory": "runs/x.cache", "run_name": "x" } }""", "--out", "runs/y");
        Assert.Equal(("runs/y", "runs/y.cache", "y"), (s.Trainer.CheckpointDirectory, s.Tracking!.RunDirectory, s.Tracking.RunName));
    }

    [Theory]
    [InlineData("--save-every", "0", "checkpoint_interval")]
    [InlineData("--save-every-minutes", "0", "checkpoint_interval_minutes")]
    public void Zero_turns_a_periodic_save_off(string flag, string value, string key)
    {
        var t = Settings(null, flag, value).Trainer;
        Assert.Null(key == "checkpoint_interval" ? t.CheckpointInterval : t.CheckpointIntervalMinutes);
    }

    [Fact]
    public void Every_setting_flag_writes_a_key_the_recipe_reads()
    {
        foreach (var flag in TrainConfig.Flags)
        {
            foreach (string key in flag.Keys)
            {
                string[] parts = key.Split('.');
                var allowed = parts.Length == 1 ? TrainingRecipe.TopLevelKeys
                    : parts[0] == "model" ? [.. OptionsJson.Keys(typeof(MoeModelOptions), OptionsJson.ModelConfig), "preset"]
                    : parts[0] == "trainer" ? OptionsJson.Keys(typeof(TrainerOptions), OptionsJson.SnakeCase)
                    : OptionsJson.Keys(typeof(YingHub.Moe.Training.Tracking.TrackingOptions), OptionsJson.SnakeCase);
                Assert.Contains(parts[^1], allowed);
            }

            Assert.Contains("[config: ", flag.Option.Description);
        }
    }

    [Theory]
    [InlineData(new[] { "--steps", "0" }, "trainer.steps = 0 is invalid; allowed: [1, 100000000] (from --steps).")]
    [InlineData(new[] { "--lr", "-1" }, "trainer.learning_rate = -1 is invalid; allowed: (0, 10] (from --lr).")]
    [InlineData(new[] { "--dropout", "1" }, "model.hidden_dropout = 1 is invalid; allowed: [0, 1) (from --dropout).")]
    [InlineData(new[] { "--save-every", "-3" }, "trainer.checkpoint_interval = -3 is invalid; allowed: [1, 100000000] or null (from --save-every).")]
    [InlineData(new[] { "--plots", "-1" }, "tracking.plot_interval = -1 is invalid; allowed: 0 (no plots) to 1000000 (from --plots).")]
    [InlineData(new[] { "--data", " " }, "data must not be empty (from --data).")]
    [InlineData(new[] { "--warmup", "-2" }, "trainer.warmup_steps = -2 is invalid; allowed: [0, 100000000] (from --warmup).")]
    public void Values_out_of_range_are_one_error_naming_the_key_and_the_flag(string[] args, string expected)
    {
        var ex = Assert.Throws<CliException>(() => Settings(null, args));
        Assert.Contains(expected, ex.Message);
        Assert.Equal(2, ex.ExitCode);
    }

    [Theory]
    [InlineData("""{ "steps": 5 }""", "run.json: unknown key 'steps'; the allowed keys are data, tokenizer, block_size, init_from, objective, model, trainer, tracking (did you mean trainer.steps?).")]
    [InlineData("""{ "trainer": { "steps": "ten" } }""", "run.json: trainer.steps must be an integer; got \"ten\".")]
    [InlineData("""{ "model": { "preset": "huge" } }""", "model.preset 'huge' is not one of tiny, makemoe, yinghub-v2")]
    [InlineData("""{ "tokenizer": "bytes" }""", "tokenizer 'bytes' is not one of char, gpt2, cl100k, o200k.")]
    public void Bad_files_are_one_error_with_exit_code_2(string json, string expected)
    {
        var ex = Assert.Throws<CliException>(() => Settings(json));
        Assert.Contains(expected, ex.Message);
        Assert.Equal(2, ex.ExitCode);
    }

    [Fact]
    public void A_missing_or_malformed_file_is_one_clear_error()
    {
        var missing = Assert.Throws<CliException>(() => TrainConfig.ReadFile(Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}.json")));
        Assert.Contains("cannot be read", missing.Message);
        string path = Path.Combine(Path.GetTempPath(), $"bad-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, """{ "data": "a", "data": "b" }""");
        try
        {
            var twice = Assert.Throws<CliException>(() => TrainConfig.ReadFile(path));
            Assert.StartsWith($"--config '{path}': not valid JSON", twice.Message);
            Assert.Equal(2, twice.ExitCode);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Init_from_keeps_the_checkpoints_tokenizer_and_model_and_refuses_model_settings_or_resume()
    {
        var s = Settings(null, "--init-from", "runs/base");
        Assert.Equal("runs/base", s.InitFrom);
        Assert.Null(s.Tokenizer);
        Assert.Null(s.Model);
        Assert.Equal("gpt2", Settings(null, "--init-from", "runs/base", "--tokenizer", "gpt2").Tokenizer);
        Assert.Equal("runs/base", Settings("""{ "init_from": "runs/base" }""", "--steps", "3").InitFrom);

        var preset = Assert.Throws<CliException>(() => Settings(null, "--init-from", "runs/base", "--preset", "makemoe"));
        Assert.Contains("--preset sets up a new model; with init_from the model options come from the checkpoint 'runs/base'.", preset.Message);
        var dropout = Assert.Throws<CliException>(() => Settings(null, "--init-from", "runs/base", "--dropout", "0"));
        Assert.Contains("--dropout sets up a new model", dropout.Message);
        var section = Assert.Throws<CliException>(() => Settings("""{ "init_from": "runs/base", "model": { "hidden_dropout": 0 } }"""));
        Assert.Contains("the model section sets up a new model", section.Message);

        var parse = Flags("--init-from", "runs/base");
        var resume = Assert.Throws<CliException>(() => TrainConfig.Recipe(TrainConfig.Merge(null, parse, false), "settings", null, parse, resume: true));
        Assert.Contains("--resume", resume.Message);
    }

    [Theory]
    [InlineData("none", TrainingPrecision.Fp32)]
    [InlineData("bf16", TrainingPrecision.Bf16)]
    [InlineData("fp16", TrainingPrecision.Fp16)]
    public void Amp_maps_to_the_trainers_precision(string amp, TrainingPrecision expected) =>
        Assert.Equal(expected, Settings(null, "--amp", amp).Trainer.Precision);

    [Theory]
    [InlineData("kaiming", null, InitScheme.KaimingNormal, null)]
    [InlineData("normal", "zero", InitScheme.Normal, ResidualInitScheme.Zero)]
    public void Init_flags_set_the_scheme_and_its_residual_convention(string init, string? residual, InitScheme scheme, ResidualInitScheme? start)
    {
        var model = Settings("""{ "model": { "preset": "makemoe" } }""", residual is null ? ["--init", init] : ["--init", init, "--residual-init", residual]).Model!;
        Assert.Equal((scheme, start), (model.Init, model.ResidualInit)); // makemoe's own residual_init (Zero) gives way to the scheme's convention
    }
}
