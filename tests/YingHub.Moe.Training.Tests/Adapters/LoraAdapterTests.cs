using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Adapters;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Schedules;
using static TorchSharp.torch;
using static YingHub.Moe.Training.Tests.Adapters.LoraTestModels;

namespace YingHub.Moe.Training.Tests.Adapters;

public sealed class LoraAdapterTests
{
    [Fact]
    public void With_B_zero_the_adapted_logits_equal_the_base_exactly()
    {
        using var moe = MoeModel();
        using var ids = Ids(11);
        using var before = Logits(moe, ids);
        using var adapter = new LoraAdapter(moe, new LoraOptions { Rank = 4, Alpha = 8, TargetModules = ["qkv_proj", "o_proj"] });
        adapter.Activate();
        using var after = Logits(moe, ids);
        Assert.True(BitEqual(before, after));

        using var gpt2 = Gpt2Model();
        using var ids2 = Ids(13);
        using var before2 = Logits(gpt2, ids2);
        using var adapter2 = new LoraAdapter(gpt2, new LoraOptions { Rank = 2, TargetModules = ["c_attn", "c_proj", "c_fc"] });
        adapter2.Activate();
        using var after2 = Logits(gpt2, ids2);
        Assert.True(BitEqual(before2, after2));
    }

    [Fact]
    public void A_is_kaiming_uniform_and_B_is_zero_under_peft_names()
    {
        using var gpt2 = Gpt2Model();
        using var adapter = new LoraAdapter(gpt2, new LoraOptions { Rank = 3, TargetModules = ["c_attn", "mlp.c_proj"] });
        Assert.Equal(["h.0.attn.c_attn", "h.0.mlp.c_proj"], adapter.TargetNames);
        var named = adapter.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal(
            ["base_model.model.h.0.attn.c_attn.lora_A.weight", "base_model.model.h.0.attn.c_attn.lora_B.weight",
             "base_model.model.h.0.mlp.c_proj.lora_A.weight", "base_model.model.h.0.mlp.c_proj.lora_B.weight"],
            named.Keys.Order(StringComparer.Ordinal));
        var a = named["base_model.model.h.0.mlp.c_proj.lora_A.weight"];
        Assert.Equal([3L, 32L], a.shape);                                         // (r, in): c_proj maps 4·8 -> 8
        Assert.Equal([8L, 3L], named["base_model.model.h.0.mlp.c_proj.lora_B.weight"].shape);
        // kaiming_uniform(a = √5): bound = √(2 / (1 + 5)) · √(3 / fan_in) = 1 / √fan_in
        double bound = 1 / Math.Sqrt(32);
        Assert.True(a.abs().max().item<float>() <= bound);
        Assert.True(a.abs().max().item<float>() > bound / 2);
        Assert.All(named.Where(p => p.Key.Contains("lora_B")), p => Assert.Equal(0, p.Value.abs().sum().item<float>()));
    }

    public static TheoryData<string, string> OneTargetCases => new()
    {
        { "moe", "layers.1.self_attn.qkv_proj" },     // InputMajorLinear, weight (in, out), bias per options
        { "gpt2", "h.0.mlp.c_fc" },                    // Conv1D, weight (in, out) + bias
        { "moe", "layers.0.block_sparse_moe.gate.noise" }, // nn.Linear, weight (out, in)
    };

    [Theory]
    [MemberData(nameof(OneTargetCases))]
    public void One_target_outputs_x_W_plus_b_plus_the_scaled_low_rank_update(string kind, string target)
    {
        using nn.Module model = kind == "moe" ? MoeModel() : Gpt2Model();
        var module = (nn.Module<Tensor, Tensor>)Module(model, target);
        var weight = Parameter(model, target + ".weight").detach().to(ScalarType.Float64);
        var bias = model.named_parameters().FirstOrDefault(p => p.name == target + ".bias").parameter?.detach().to(ScalarType.Float64);
        bool inputMajor = module is not Linear;
        using var adapter = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 3, Dropout = 0.5, TargetModules = [target] }); // dropout: training mode only
        Randomize(adapter, seed: 7);
        adapter.Activate();
        var a = Parameter(adapter, $"base_model.model.{target}.lora_A.weight").detach().to(ScalarType.Float64); // (r, in)
        var b = Parameter(adapter, $"base_model.model.{target}.lora_B.weight").detach().to(ScalarType.Float64); // (out, r)
        long inFeatures = a.size(1);
        torch.manual_seed(11);
        using var x = torch.randn(3, inFeatures);

        using var noGrad = torch.no_grad();
        using var y = module.call(x);
        // naive: y[n, o] = Σ_i x[n, i] W(i, o) + b[o] + (3 / 2) Σ_j (Σ_i x[n, i] A[j, i]) B[o, j]
        var xs = x.to(ScalarType.Float64).data<double>().ToArray();
        var w = weight.contiguous().data<double>().ToArray();
        var av = a.contiguous().data<double>().ToArray();
        var bv = b.contiguous().data<double>().ToArray();
        var bi = bias?.data<double>().ToArray();
        long outFeatures = b.size(0), rank = a.size(0);
        var expected = new double[3 * outFeatures];
        for (int n = 0; n < 3; n++)
        for (int o = 0; o < outFeatures; o++)
        {
            double sum = bi?[o] ?? 0;
            for (int i = 0; i < inFeatures; i++) sum += xs[n * inFeatures + i] * (inputMajor ? w[i * outFeatures + o] : w[o * inFeatures + i]);
            double update = 0;
            for (int j = 0; j < rank; j++)
            {
                double h = 0;
                for (int i = 0; i < inFeatures; i++) h += xs[n * inFeatures + i] * av[j * inFeatures + i];
                update += h * bv[o * rank + j];
            }

            expected[n * outFeatures + o] = sum + 1.5 * update;
        }

        var actual = y.to(ScalarType.Float64).data<double>().ToArray();
        Assert.Equal(expected.Length, actual.Length);
        for (int k = 0; k < expected.Length; k++) Assert.Equal(expected[k], actual[k], 4);
        using var row = module.call(x[..1]);                                   // one row: the library's one-row kernels
        for (int k = 0; k < outFeatures; k++) Assert.Equal(expected[k], row[0, k].item<float>(), 4);

        module.train();                                                        // in training mode the adapter's input is dropped out
        using var dropped = module.call(x);
        Assert.False(torch.allclose(dropped, y, rtol: 0, atol: 1e-4));
    }

    [Fact]
    public void A_bfloat16_base_runs_float32_factors_and_keeps_its_dtype()
    {
        torch.manual_seed(3);
        using var model = nn.Sequential(("fc", nn.Linear(4, 3)));
        model.to(ScalarType.BFloat16);
        using var adapter = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 2, TargetModules = ["fc"] });
        Randomize(adapter, 5);
        adapter.Activate();
        var fc = (nn.Module<Tensor, Tensor>)Module(model, "fc");
        using var x = torch.randn(2, 4).to(ScalarType.BFloat16);
        using var noGrad = torch.no_grad();
        using var y = fc.call(x);
        Assert.Equal(ScalarType.BFloat16, y.dtype);
        var x32 = x.to(ScalarType.Float32);
        var w = Parameter(model, "fc.weight").to(ScalarType.Float32);   // (out, in)
        var b = Parameter(model, "fc.bias").to(ScalarType.Float32);
        var a = Parameter(adapter, "base_model.model.fc.lora_A.weight"); // float32 (r, in)
        var bb = Parameter(adapter, "base_model.model.fc.lora_B.weight"); // float32 (out, r)
        using var expected = torch.matmul(x32, w.t()) + b + torch.matmul(torch.matmul(x32, a.t()), bb.t()); // scale 2 / 2
        Assert.True(torch.allclose(y.to(ScalarType.Float32), expected, rtol: 0.02, atol: 0.02));
    }

    [Fact]
    public void Cached_decoding_with_an_active_adapter_matches_a_full_forward_and_leaks_nothing()
    {
        using var model = MoeModel();
        using var adapter = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 4, TargetModules = ["qkv_proj", "o_proj"] });
        Randomize(adapter, 6);
        adapter.Activate();
        torch.manual_seed(9);
        using var ids = torch.randint(0, 11, [1, 9]);
        using var full = Logits(model, ids);                                           // (1, 9, V)
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
        {
            using var cache = model.CreateCache(batch: 1);
            model.call(new CausalLMInput(ids[.., ..8], Cache: cache));
            var last = model.call(new CausalLMInput(ids[.., 8..], Cache: cache)).Logits; // one row per projection: the one-row kernels
            Assert.True(torch.allclose(last, full[.., 8..], rtol: 1e-4, atol: 1e-5));
        }

        model.train();
        DisposeScopeManager.Statistics.Reset();
        using (var scope = torch.NewDisposeScope())
        {
            var output = model.call(new CausalLMInput(ids, ids));
            output.Loss!.backward();
        }

        adapter.zero_grad();
        Assert.Equal(0, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void Training_changes_only_the_adapter_and_leaves_every_base_parameter_bit_identical()
    {
        using var model = MoeModel();
        using var adapter = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 4, Dropout = 0.1, TargetModules = ["qkv_proj", "o_proj"] });
        adapter.Activate();
        Assert.All(model.parameters(), p => Assert.False(p.requires_grad));
        var baseBefore = Snapshot(model);
        var adapterBefore = Snapshot(adapter);
        model.train();
        torch.manual_seed(4);
        using var x = torch.randint(0, 11, [2, 8]);
        using var labels = torch.randint(0, 11, [2, 8]);

        // one backward by hand: gradients reach B (A's is zero while B is zero) and nothing of the base
        using (var scope = torch.NewDisposeScope())
        {
            var output = model.call(new CausalLMInput(x, labels));
            output.Loss!.backward();
            Assert.All(model.parameters(), p => Assert.Null(p.grad));
            Assert.All(adapter.named_parameters(), p => Assert.NotNull(p.parameter.grad));
            Assert.All(adapter.named_parameters().Where(p => p.name.EndsWith("lora_B.weight", StringComparison.Ordinal)),
                p => Assert.True(p.parameter.grad!.abs().sum().item<float>() > 0, p.name));
            adapter.zero_grad();
        }

        using var optimizer = new OptimizerStep(adapter.named_parameters(), new OptimizerStepOptions
        {
            AdamW = new AdamWGroupOptions { LearningRate = 1e-2, WeightDecay = 0.1 }, Schedule = new ConstantSchedule(1e-2),
        });
        for (int step = 0; step < 3; step++)
        {
            using var scope = torch.NewDisposeScope();
            optimizer.Step(step, _ => model.call(new CausalLMInput(x, labels)).Loss!);
        }

        foreach (var (name, p) in model.named_parameters()) Assert.True(BitEqual(baseBefore[name], p.detach()), name);
        foreach (var (name, p) in adapter.named_parameters()) Assert.False(BitEqual(adapterBefore[name], p.detach()), name);
    }

    [Fact]
    public void A_bf16_autocast_step_trains_the_adapter_and_leaves_the_base()
    {
        using var model = MoeModel();
        using var adapter = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 4, TargetModules = ["qkv_proj", "o_proj"] });
        adapter.Activate();
        var baseBefore = Snapshot(model);
        var adapterBefore = Snapshot(adapter);
        model.train();
        torch.manual_seed(4);
        using var x = torch.randint(0, 11, [2, 8]);
        using var optimizer = new OptimizerStep(adapter.named_parameters(), new OptimizerStepOptions
        {
            AdamW = new AdamWGroupOptions { LearningRate = 1e-2 }, Schedule = new ConstantSchedule(1e-2), Precision = TrainingPrecision.Bf16,
        });
        for (int step = 0; step < 2; step++)
        {
            using var scope = torch.NewDisposeScope();
            var result = optimizer.Step(step, _ => model.call(new CausalLMInput(x, x)).Loss!);
            Assert.True(result.Taken);
        }

        foreach (var (name, p) in model.named_parameters()) Assert.True(BitEqual(baseBefore[name], p.detach()), name);
        foreach (var (name, p) in adapter.named_parameters())
        {
            Assert.Equal(ScalarType.Float32, p.dtype);
            Assert.False(BitEqual(adapterBefore[name], p.detach()), name);
        }
    }

    [Fact]
    public void Removing_the_last_adapter_restores_requires_grad()
    {
        using var model = MoeModel();
        var names = model.named_parameters().Select(p => p.name).ToArray();
        Parameter(model, "embed_tokens.weight").requires_grad = false; // frozen before: stays frozen after
        var first = new LoraAdapter(model, new LoraOptions { TargetModules = ["o_proj"] }, "first");
        var second = new LoraAdapter(model, new LoraOptions { TargetModules = ["qkv_proj"] }, "second");
        first.Dispose();
        Assert.All(model.parameters(), p => Assert.False(p.requires_grad));
        second.Remove();
        Assert.All(model.named_parameters(), p => Assert.Equal(p.name != "embed_tokens.weight", p.parameter.requires_grad));
        second.Dispose();
        Assert.Equal(names, model.named_parameters().Select(p => p.name));
    }

    [Fact]
    public void Activate_and_deactivate_change_the_logits_and_back_one_adapter_at_a_time()
    {
        using var model = MoeModel();
        using var ids = Ids(11);
        using var baseLogits = Logits(model, ids);
        using var first = new LoraAdapter(model, new LoraOptions { Rank = 2, TargetModules = ["o_proj"] }, "first");
        using var second = new LoraAdapter(model, new LoraOptions { Rank = 2, TargetModules = ["qkv_proj"] }, "second");
        Randomize(first, 1);
        Randomize(second, 2);

        first.Activate();
        Assert.True(first.IsActive);
        using var firstLogits = Logits(model, ids);
        Assert.False(torch.allclose(firstLogits, baseLogits, rtol: 0, atol: 1e-4));
        var ex = Assert.Throws<InvalidOperationException>(second.Activate);
        Assert.Contains("Adapter 'first' is active", ex.Message);

        first.Deactivate();
        using var offLogits = Logits(model, ids);
        Assert.True(BitEqual(baseLogits, offLogits));

        second.Activate();
        using var secondLogits = Logits(model, ids);
        Assert.False(torch.allclose(secondLogits, firstLogits, rtol: 0, atol: 1e-4));
        second.Remove();
        using var removedLogits = Logits(model, ids);
        Assert.True(BitEqual(baseLogits, removedLogits));
        Assert.Throws<InvalidOperationException>(second.Activate);
    }

    [Fact]
    public void Bad_options_and_targets_are_refused_naming_the_value()
    {
        using var model = MoeModel();
        string Message(LoraOptions options, string name = "x") => Assert.ThrowsAny<ArgumentException>(() => { using var _ = new LoraAdapter(model, options, name); }).Message;

        Assert.Contains("Rank = 0 is invalid; allowed: [1, 65536]", Message(new LoraOptions { Rank = 0, TargetModules = ["o_proj"] }));
        Assert.Contains("Alpha = -1 is invalid", Message(new LoraOptions { Alpha = -1, TargetModules = ["o_proj"] }));
        Assert.Contains("Dropout = 1 is invalid; allowed: [0, 1)", Message(new LoraOptions { Dropout = 1, TargetModules = ["o_proj"] }));
        Assert.Contains("TargetModules", Message(new LoraOptions { TargetModules = [] }));
        Assert.Equal(["qkv_proj", "o_proj"], new LoraOptions().TargetModules); // the default: the attention projections
        Assert.Contains("'proj' matches no module", Message(new LoraOptions { TargetModules = ["proj"] }));
        Assert.Contains("'lm_head' matches only modules LoRA cannot adapt", Message(new LoraOptions { TargetModules = ["lm_head"] }));
        string experts = Message(new LoraOptions { TargetModules = ["block_sparse_moe.experts"] });
        Assert.Contains("matches only modules LoRA cannot adapt", experts);
        Assert.Contains("StackedLinear", experts + Message(new LoraOptions { TargetModules = ["fc1"] }));
        Assert.Contains("self_attn", Message(new LoraOptions { TargetModules = ["self_attn"] }));

        using var taken = new LoraAdapter(model, new LoraOptions { TargetModules = ["o_proj"] }, "same");
        Assert.Contains("named 'same' is attached", Message(new LoraOptions { TargetModules = ["o_proj"] }, "same"));
        Assert.All(model.parameters(), p => Assert.False(p.requires_grad)); // failed constructions attached nothing
    }

    [Fact]
    public void Patterns_match_whole_name_segments_from_the_end()
    {
        Assert.True(LoraOptions.Matches("qkv_proj", "layers.0.self_attn.qkv_proj"));
        Assert.True(LoraOptions.Matches("self_attn.qkv_proj", "layers.0.self_attn.qkv_proj"));
        Assert.True(LoraOptions.Matches("layers.0.self_attn.qkv_proj", "layers.0.self_attn.qkv_proj"));
        Assert.False(LoraOptions.Matches("proj", "layers.0.self_attn.qkv_proj"));
        Assert.False(LoraOptions.Matches("0.self_attn", "layers.0.self_attn.qkv_proj"));
        Assert.False(LoraOptions.Matches("", "qkv_proj"));
    }
}
