using TorchSharp;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Adapters;
using static TorchSharp.torch;
using static YingHub.Moe.Training.Tests.Adapters.LoraTestModels;

namespace YingHub.Moe.Training.Tests.Adapters;

public sealed class LoraMixTests
{
    private const string Target = "layers.1.self_attn.o_proj";

    /// <summary>x W + b of <paramref name="target"/> in float64, by explicit matmuls over the layer's own weight.</summary>
    internal static Tensor BaseOutput(nn.Module model, string target, Tensor x)
    {
        var weight = Parameter(model, target + ".weight").detach().to(ScalarType.Float64);
        bool inputMajor = Module(model, target) is ILinearLayer { InputMajor: true };
        var y = torch.matmul(x.to(ScalarType.Float64), inputMajor ? weight : weight.t());
        var bias = model.named_parameters().FirstOrDefault(p => p.name == target + ".bias").parameter;
        return bias is null ? y : y + bias.detach().to(ScalarType.Float64);
    }

    /// <summary>(x Aᵀ) Bᵀ in float64 for the factors at <paramref name="prefix"/> (e.g. <c>base_model.model.m.</c>).</summary>
    internal static Tensor LowRank(nn.Module owner, string prefix, Tensor x)
    {
        var a = Parameter(owner, prefix + "lora_A.weight").detach().to(ScalarType.Float64); // (r, in)
        var b = Parameter(owner, prefix + "lora_B.weight").detach().to(ScalarType.Float64); // (out, r)
        return torch.matmul(torch.matmul(x.to(ScalarType.Float64), a.t()), b.t());
    }

    private static (LoraAdapter A, LoraAdapter B, LoraAdapter C) ThreeAdapters(nn.Module model)
    {
        var a = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 3, TargetModules = ["qkv_proj", "o_proj"] }, "a");
        var b = new LoraAdapter(model, new LoraOptions { Rank = 3, Alpha = 1.5, TargetModules = ["o_proj"] }, "b");
        var c = new LoraAdapter(model, new LoraOptions { Rank = 1, Alpha = 2, TargetModules = ["layers.0.self_attn.qkv_proj"] }, "c"); // not at Target
        Randomize(a, 1);
        Randomize(b, 2);
        Randomize(c, 3);
        return (a, b, c);
    }

    [Fact]
    public void A_fixed_mix_outputs_the_base_plus_each_weighted_scaled_update()
    {
        using var model = MoeModel();
        var (a, b, c) = ThreeAdapters(model);
        using var _a = a;
        using var _b = b;
        using var _c = c;
        using var mix = new LoraMix([(a, 0.5), (b, -1.25), (c, 2.0)]);
        mix.Activate();
        Assert.True(mix.IsActive && a.IsActive && b.IsActive && c.IsActive);
        torch.manual_seed(11);
        using var x = torch.randn(2, 3, 16);                                      // (B, T, C)
        var module = (nn.Module<Tensor, Tensor>)Module(model, Target);
        using var noGrad = torch.no_grad();
        using var y = module.call(x);
        // by hand: x W + b + 0.5 · (3 / 2) · B_a A_a x − 1.25 · (1.5 / 3) · B_b A_b x; c has no adapter at this target
        using var expected = BaseOutput(model, Target, x) + 0.5 * 1.5 * LowRank(a, $"base_model.model.{Target}.", x) - 1.25 * 0.5 * LowRank(b, $"base_model.model.{Target}.", x);
        Assert.True(torch.allclose(y.to(ScalarType.Float64), expected, rtol: 0, atol: 1e-5));

        string qkv = "layers.0.self_attn.qkv_proj";                               // a and c there
        using var y0 = ((nn.Module<Tensor, Tensor>)Module(model, qkv)).call(x);
        using var expected0 = BaseOutput(model, qkv, x) + 0.75 * LowRank(a, $"base_model.model.{qkv}.", x) + 2.0 * 2.0 * LowRank(c, $"base_model.model.{qkv}.", x);
        Assert.True(torch.allclose(y0.to(ScalarType.Float64), expected0, rtol: 0, atol: 1e-5));

        mix.SetWeights([0, 1, 0]);                                                // new weights apply to the next call
        using var y2 = module.call(x);
        using var expected2 = BaseOutput(model, Target, x) + 0.5 * LowRank(b, $"base_model.model.{Target}.", x);
        Assert.True(torch.allclose(y2.to(ScalarType.Float64), expected2, rtol: 0, atol: 1e-5));
    }

    [Fact]
    public void Per_sequence_weights_give_each_sequence_its_own_mix()
    {
        using var model = MoeModel();
        var (a, b, c) = ThreeAdapters(model);
        using var _a = a;
        using var _b = b;
        using var _c = c;
        using var mix = new LoraMix([(a, 1), (b, 1), (c, 1)]);
        using var weights = torch.tensor(new float[] { 1, 0, 0.5f, -0.5f, 2, 0 }).view(2, 3); // (B, n)
        mix.SetWeightsPerSequence(weights);
        Assert.Null(mix.Weights);
        mix.Activate();
        torch.manual_seed(12);
        using var x = torch.randn(2, 4, 16);                                      // (B, T, C)
        var module = (nn.Module<Tensor, Tensor>)Module(model, Target);
        using var noGrad = torch.no_grad();
        using var y = module.call(x);
        using var baseY = BaseOutput(model, Target, x);
        using var la = LowRank(a, $"base_model.model.{Target}.", x) * 1.5;         // s_a = 3 / 2
        using var lb = LowRank(b, $"base_model.model.{Target}.", x) * 0.5;         // s_b = 1.5 / 3
        using var first = baseY[0] + 1.0 * la[0] + 0.0 * lb[0];                   // row 0: (1, 0, 0.5); c not here
        using var second = baseY[1] - 0.5 * la[1] + 2.0 * lb[1];                  // row 1: (−0.5, 2, 0)
        Assert.True(torch.allclose(y[0].to(ScalarType.Float64), first, rtol: 0, atol: 1e-5));
        Assert.True(torch.allclose(y[1].to(ScalarType.Float64), second, rtol: 0, atol: 1e-5));

        // the whole model runs with per-sequence weights (every target sees (B, T, ·))
        using var ids = Ids(11);
        using var logits = Logits(model, ids);
        Assert.Equal([2L, 6L, 11L], logits.shape);

        using var three = torch.randn(3, 4, 16);
        var ex = Assert.Throws<ArgumentException>(() => module.call(three));
        Assert.Contains("batch of 2", ex.Message);
        Assert.Contains(Target, ex.Message);
        Assert.Contains("(B, 3)", Assert.Throws<ArgumentException>(() => mix.SetWeightsPerSequence(torch.ones(2, 2))).Message);
        Assert.Contains("not finite", Assert.Throws<ArgumentException>(() => mix.SetWeightsPerSequence(torch.full(2, 3, double.NaN))).Message);
        Assert.Contains("weight NaN", Assert.Throws<ArgumentException>(() => mix.SetWeights([1, double.NaN, 0])).Message);
        Assert.Contains("3 adapters but 2 weights", Assert.Throws<ArgumentException>(() => mix.SetWeights([1, 0])).Message);
    }

    [Fact]
    public void With_every_B_zero_a_mix_leaves_the_logits_bit_identical()
    {
        using var model = MoeModel();
        using var ids = Ids(11);
        using var before = Logits(model, ids);
        using var a = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 4, TargetModules = ["qkv_proj", "o_proj"] }, "a");
        using var b = new LoraAdapter(model, new LoraOptions { Rank = 3, TargetModules = ["o_proj"] }, "b");
        using var mix = new LoraMix([(a, 0.3), (b, 0.7)]);
        mix.Activate();
        using var batchWide = Logits(model, ids);
        Assert.True(BitEqual(before, batchWide));
        using var weights = torch.tensor(new float[] { 0.2f, 0.8f, 1, 0 }).view(2, 2);
        mix.SetWeightsPerSequence(weights);
        using var perSequence = Logits(model, ids);
        Assert.True(BitEqual(before, perSequence));
    }

    [Fact]
    public void A_single_active_adapter_is_the_mix_of_it_with_weight_one()
    {
        using var model = MoeModel();
        using var ids = Ids(11);
        var (a, b, c) = ThreeAdapters(model);
        using var _a = a;
        using var _b = b;
        using var _c = c;
        a.Activate();
        using var solo = Logits(model, ids);
        using var mix = new LoraMix([(a, 1.0)]);
        var ex = Assert.Throws<InvalidOperationException>(mix.Activate);
        Assert.Contains("Adapter 'a' is active", ex.Message);
        a.Deactivate();
        mix.Activate();
        Assert.True(a.IsActive);
        using var mixed = Logits(model, ids);
        Assert.True(BitEqual(solo, mixed));
        Assert.Contains("Adapter 'a' is active", Assert.Throws<InvalidOperationException>(b.Activate).Message); // a mix of a alone at weight 1 is a
        Assert.Throws<InvalidOperationException>(a.Merge);                      // merging needs a alone, activated by itself
        a.Deactivate();                                                          // a member deactivates the mix
        Assert.False(mix.IsActive);

        using var pair = new LoraMix([(a, 1), (b, 1)]);
        pair.Activate();
        Assert.Contains("The mix of adapters 'a', 'b' is active", Assert.Throws<InvalidOperationException>(c.Activate).Message);
        b.Remove();                                                              // removing a member deactivates the mix
        Assert.False(pair.IsActive);
        using var baseLogits = Logits(model, ids);
        a.Activate();
        a.Deactivate();
        using var off = Logits(model, ids);
        Assert.True(BitEqual(baseLogits, off));
        Assert.Contains("'b' was removed", Assert.Throws<InvalidOperationException>(pair.Activate).Message);
        Assert.Contains("in the mix twice", Assert.Throws<ArgumentException>(() => new LoraMix([(a, 1), (a, 2)])).Message);
    }

    [Fact]
    public void A_mix_trains_its_adapters_through_the_hooks()
    {
        using var model = MoeModel();
        var (a, b, c) = ThreeAdapters(model);
        using var _a = a;
        using var _b = b;
        using var _c = c;
        using var mix = new LoraMix([(a, 0.5), (b, 0), (c, 1)]);
        mix.Activate();
        model.train();
        using var ids = Ids(11);
        using (var scope = torch.NewDisposeScope())
        {
            model.call(new CausalLMInput(ids, ids)).Loss!.backward();
        }

        Assert.All(a.parameters().Concat(c.parameters()), p => Assert.True(p.grad is { } g && g.abs().sum().item<float>() > 0));
        Assert.All(b.parameters(), p => Assert.Null(p.grad));                   // weight 0: left out
        Assert.All(model.parameters(), p => Assert.Null(p.grad));
    }
}
