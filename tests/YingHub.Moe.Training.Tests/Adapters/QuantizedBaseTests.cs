using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Quantization;
using YingHub.Moe.Training.Adapters;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Schedules;
using static TorchSharp.torch;
using static YingHub.Moe.Training.Tests.Adapters.LoraTestModels;

namespace YingHub.Moe.Training.Tests.Adapters;

public sealed class QuantizedBaseTests
{
    /// <summary>bitsandbytes' NF4 table, copied by hand.</summary>
    private static readonly double[] Nf4 =
    [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
        -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ];

    /// <summary>The weights the quantization must cover, by parameter name (the test's own list, not the code's).</summary>
    private static bool IsQuantizedWeight(string name) =>
        new[] { "qkv_proj.weight", "o_proj.weight", "fc1.weight", "fc2.weight", "fc3.weight", "c_attn.weight", "c_proj.weight", "c_fc.weight" }
            .Any(s => name.EndsWith("." + s, StringComparison.Ordinal));

    public static MoeForCausalLM RichMoeModel(int seed = 2)
    {
        torch.manual_seed(seed);
        var model = new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = 11, ContextLength = 16, HiddenSize = 16, NumHeads = 2, NumLayers = 2, NumExperts = 4, TopK = 2, ExpertMultiplier = 2,
            Router = RouterKind.NoisyTopK, Positions = PositionEncoding.Learned, MoeEvery = 2, SharedExpert = true, DeepExperts = 1,
        });
        model.eval();
        return model;
    }

    public static TheoryData<QuantizationKind, int> Kinds => new() { { QuantizationKind.Nf4, 64 }, { QuantizationKind.Nf4, 10 }, { QuantizationKind.Int8, 64 } };

    [Theory]
    [MemberData(nameof(Kinds))]
    public void A_quantized_moe_model_gives_the_logits_of_its_float_twin_holding_naively_rounded_weights(QuantizationKind kind, int blockSize)
    {
        using var model = RichMoeModel();
        using var reference = RichMoeModel();
        int replaced = ReplaceByNaiveRoundTrip(reference, kind, blockSize);
        Assert.Equal(2 * 2 + 3 + 2 + 2 + 2, replaced); // qkv, o × 2 layers; deep experts fc1-3; experts fc1-2; shared fc1-2; the dense layer's fc1-2
        ModelQuantization.Quantize(model, new QuantizationOptions { Kind = kind, BlockSize = blockSize });
        Assert.DoesNotContain(model.named_parameters(), p => IsQuantizedWeight(p.name));

        using var floatModel = RichMoeModel();
        foreach (var ids in new[] { Ids(11), torch.tensor(new long[] { 3 }).view(1, 1), torch.tensor(new long[] { 3, 7, 1 }).view(3, 1) })
        {
            // (2, 6): sorted dispatch; (1, 1): the one-token expert kernel; (3, 1): the few-token kernels
            using (ids)
            using (var expected = Logits(reference, ids))
            using (var actual = Logits(model, ids))
            using (var original = Logits(floatModel, ids))
            {
                Assert.True(torch.allclose(actual, expected, rtol: 1e-4, atol: 1e-5), $"max diff {(actual - expected).abs().max().item<float>()}");
                Assert.False(torch.allclose(actual, original, rtol: 1e-4, atol: 1e-5)); // quantization did change something
            }
        }
    }

    [Fact]
    public void Gpt2_conv1d_layers_quantize_to_the_naive_round_trip_too()
    {
        using var model = Gpt2Model();
        using var reference = Gpt2Model();
        Assert.Equal(4, ReplaceByNaiveRoundTrip(reference, QuantizationKind.Nf4, 64));
        var report = ModelQuantization.Quantize(model, new QuantizationOptions());
        Assert.Equal("GPT-2 Conv1D", Assert.Single(report.Groups).Kind);
        using var ids = Ids(13);
        using var expected = Logits(reference, ids);
        using var actual = Logits(model, ids);
        Assert.True(torch.allclose(actual, expected, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void Quantizing_frees_the_float_weights_and_the_model_holds_only_codes_and_scales_for_them()
    {
        using var model = RichMoeModel();
        long before = CountBytes(model);
        var floatWeights = model.named_parameters().Where(p => IsQuantizedWeight(p.name)).Select(p => p.parameter.numel()).ToArray();
        long expectedStore = floatWeights.Sum(n => (n + 63) / 64 * (32 + 4)); // NF4: 64 elements → 32 bytes of codes + one fp32 absmax
        var report = ModelQuantization.Quantize(model, new QuantizationOptions());
        long after = CountBytes(model);

        Assert.Equal(before - floatWeights.Sum() * 4 + expectedStore, after);
        Assert.Equal(before, report.ModelBytesBefore);
        Assert.Equal(after, report.ModelBytesAfter);
        Assert.Equal(floatWeights.Sum() * 4, report.WeightBytesBefore);
        Assert.Equal(expectedStore, report.WeightBytesAfter);
        Assert.Equal(["attention", "dense FFN", "experts"], report.Groups.Select(g => g.Kind).Order());
        Assert.All(model.parameters(), p => Assert.False(p.requires_grad));
        Assert.Contains(model.named_buffers(), b => b.name == "layers.0.self_attn.qkv_proj.quantized_weight.codes");
        Assert.Throws<InvalidOperationException>(() => ModelQuantization.Quantize(model, new QuantizationOptions()));
    }

    [Fact]
    public void Target_patterns_select_layers_and_a_pattern_that_selects_none_is_named()
    {
        using var model = RichMoeModel();
        var report = ModelQuantization.Quantize(model, new QuantizationOptions { Kind = QuantizationKind.Int8, TargetModules = ["o_proj"] });
        Assert.Equal(2, Assert.Single(report.Groups).Layers);
        Assert.Contains(model.named_parameters(), p => p.name == "layers.0.self_attn.qkv_proj.weight");
        using var other = RichMoeModel();
        var error = Assert.Throws<ArgumentException>(() => ModelQuantization.Quantize(other, new QuantizationOptions { TargetModules = ["lm_head"] }));
        Assert.Contains("'lm_head'", error.Message);
        Assert.False(ModelQuantization.IsQuantized(other));
    }

    [Fact]
    public void Training_a_quantized_base_is_refused_with_a_clear_error()
    {
        using var model = RichMoeModel();
        ModelQuantization.Quantize(model, new QuantizationOptions());
        var error = Assert.Throws<InvalidOperationException>(() => new OptimizerStep(model, new OptimizerStepOptions { Schedule = new ConstantSchedule(1e-3) }));
        Assert.Contains("quantized", error.Message);
        Assert.Contains("LoRA adapter", error.Message);
        var layer = (ILinearLayer)Module(model, "layers.1.self_attn.o_proj");
        Assert.Equal(QuantizationKind.Nf4, layer.Quantization);
        Assert.Contains("quantized", Assert.Throws<InvalidOperationException>(() => layer.Weight).Message);
    }

    [Fact]
    public void Lora_on_a_quantized_base_trains_only_a_and_b_and_the_base_stays_bit_identical()
    {
        using var model = RichMoeModel();
        ModelQuantization.Quantize(model, new QuantizationOptions());
        var baseBefore = model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).Concat(model.named_buffers())
            .ToDictionary(p => p.Item1, p => p.Item2.detach().clone());
        using var adapter = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 4, TargetModules = ["qkv_proj", "o_proj"] });
        adapter.Activate();
        var adapterBefore = Snapshot(adapter);
        model.train();
        torch.manual_seed(4);
        using var x = torch.randint(0, 11, [2, 8]);
        using var labels = torch.randint(0, 11, [2, 8]);
        using (var scope = torch.NewDisposeScope())
        {
            model.call(new CausalLMInput(x, labels)).Loss!.backward();
            Assert.All(model.parameters(), p => Assert.Null(p.grad));
            Assert.All(adapter.named_parameters().Where(p => p.name.EndsWith("lora_B.weight", StringComparison.Ordinal)),
                p => Assert.True(p.parameter.grad!.abs().sum().item<float>() > 0, p.name));
            adapter.zero_grad();
        }

        using var optimizer = new OptimizerStep(adapter.named_parameters(), new OptimizerStepOptions
        {
            AdamW = new AdamWGroupOptions { LearningRate = 1e-2 }, Schedule = new ConstantSchedule(1e-2),
        });
        float first = 0, last = 0;
        for (int step = 0; step < 5; step++)
        {
            using var scope = torch.NewDisposeScope();
            optimizer.Step(step, _ =>
            {
                var loss = model.call(new CausalLMInput(x, labels)).Loss!;
                (step == 0 ? ref first : ref last) = loss.item<float>();
                return loss;
            });
        }

        Assert.True(last < first, $"loss {first} -> {last}");
        var after = model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).Concat(model.named_buffers()).ToDictionary(p => p.Item1, p => p.Item2);
        Assert.Equal(baseBefore.Keys.Order(), after.Keys.Order());
        foreach (var (name, t) in baseBefore)
        {
            if (name.Contains("utilization", StringComparison.Ordinal)) continue; // the routers' running load window records training steps
            Assert.True(BitEqual(t, after[name].detach()), name);
        }

        foreach (var (name, p) in adapter.named_parameters()) Assert.False(BitEqual(adapterBefore[name], p.detach()), name);
        var refusal = Assert.Throws<InvalidOperationException>(adapter.Merge);
        Assert.Contains("quantized", refusal.Message);
        Assert.Contains("layers.0.self_attn.qkv_proj", refusal.Message);
    }

    [Fact]
    public void Merging_into_a_partly_quantized_model_is_refused_before_anything_is_added()
    {
        using var model = RichMoeModel();
        ModelQuantization.Quantize(model, new QuantizationOptions { TargetModules = ["o_proj"] }); // qkv_proj stays float
        using var adapter = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 4, TargetModules = ["qkv_proj", "o_proj"] });
        Randomize(adapter, 3);
        var before = Snapshot(model);
        var error = Assert.Throws<InvalidOperationException>(adapter.Merge);
        Assert.Contains("'layers.0.self_attn.qkv_proj'", error.Message); // the first target, a float layer of the quantized base
        Assert.False(adapter.IsMerged);
        foreach (var (name, p) in model.named_parameters()) Assert.True(BitEqual(before[name], p.detach()), name);
    }

    private static long CountBytes(nn.Module model) =>
        model.parameters().Sum(p => p.numel() * p.ElementSize) + model.buffers().Sum(b => b.numel() * b.ElementSize);

    /// <summary>Replaces every weight the quantization covers by deq(q(w)), computed element by element; returns how many.</summary>
    private static int ReplaceByNaiveRoundTrip(nn.Module model, QuantizationKind kind, int blockSize)
    {
        int count = 0;
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in model.named_parameters().Where(p => IsQuantizedWeight(p.name)).ToList())
        {
            var w = p.detach().contiguous().data<float>().ToArray();
            var absmax = new float[(w.Length + blockSize - 1) / blockSize];
            for (int i = 0; i < w.Length; i++) absmax[i / blockSize] = Math.Max(absmax[i / blockSize], Math.Abs(w[i]));
            var back = new float[w.Length];
            for (int i = 0; i < w.Length; i++)
            {
                float a = absmax[i / blockSize], x = a == 0 ? 0 : w[i] / a;
                if (kind == QuantizationKind.Int8)
                {
                    back[i] = (float)Math.Round(x * 127) / 127 * a;
                    continue;
                }

                int best = 0;
                for (int c = 1; c < 16; c++)
                    if (Math.Abs(x - Nf4[c]) < Math.Abs(x - Nf4[best])) best = c;
                back[i] = (float)Nf4[best] * a;
            }

            using var replaced = torch.tensor(back, p.shape);
            p.copy_(replaced);
            count++;
        }

        return count;
    }
}
