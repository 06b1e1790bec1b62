using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>The LM-head bias and the bias initialisation (zero, or PyTorch's uniform(±1/√fan_in), as makeMoE leaves its biases).</summary>
public class BiasOptionsTests
{
    [Fact]
    public void The_lm_head_bias_is_added_to_the_logits()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(2);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.LmHeadBias = true; o.BiasInit = BiasInitScheme.Uniform; }));
        model.eval();
        var ids = torch.tensor(new long[] { 3, 1, 4, 1, 5, 9, 2, 6 }, 2, 4);
        using var _ = torch.no_grad();
        using var output = model.call(new CausalLMInput(ids, OutputHiddenStates: true));
        var head = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var expected = output.LastHiddenState!.matmul(head["lm_head.weight"].t()) + head["lm_head.bias"]; // (B, T, V)
        Tiny.AssertClose(expected, output.Logits, atol: 1e-5);
        Assert.True(head["lm_head.bias"].abs().max().item<float>() > 0, "the bias should be drawn, or the test proves nothing");
    }

    [Fact]
    public void Without_the_option_the_head_has_no_bias()
    {
        using var model = new MoeForCausalLM(Tiny.Options());
        Assert.DoesNotContain(model.named_parameters(), p => p.name.StartsWith("lm_head.bias", StringComparison.Ordinal));
        Assert.Contains(model.named_parameters(), p => p.name == "lm_head.weight");
    }

    /// <summary>Every Linear bias of the Tiny model (C 16, expert H 32, dense H 48) and its layer's fan-in.</summary>
    private static readonly (string Suffix, int FanIn)[] FanIns =
    [
        ("self_attn.qkv_proj.bias", 16), ("self_attn.o_proj.bias", 16), ("gate.bias", 16), ("gate.noise.bias", 16),
        ("experts.fc1.bias", 16), ("experts.fc2.bias", 32), ("mlp.ffn.fc1.bias", 16), ("mlp.ffn.fc2.bias", 48), ("lm_head.bias", 16),
    ];

    private static MoeForCausalLM Model(BiasInitScheme scheme) => new(Tiny.Options(o =>
    {
        o.BiasInit = scheme;
        o.LmHeadBias = true;
        o.Router = RouterKind.NoisyTopK;
        o.MoeEvery = 2;            // layer 0 dense, layer 1 MoE
        o.DenseMultiplier = 3;     // dense H 48: a fan-in of its own
        o.NumExperts = 8;          // 8 × 16 and 8 × 32 stacked expert biases: enough draws to see the bound
    }));

    [Fact]
    public void Uniform_biases_stay_within_one_over_root_fan_in_and_reach_it()
    {
        torch.manual_seed(12);
        using var model = Model(BiasInitScheme.Uniform);
        var biases = model.named_parameters().Where(p => p.name.EndsWith(".bias", StringComparison.Ordinal) && !p.name.Contains("layernorm", StringComparison.Ordinal) && p.name != "norm.bias").ToList();
        Assert.Equal(FanIns.Length + 2, biases.Count); // the attention biases (qkv, o) of both layers
        foreach (var (name, bias) in biases)
        {
            int fanIn = FanIns.Single(f => name.EndsWith(f.Suffix, StringComparison.Ordinal)).FanIn;
            double bound = 1 / Math.Sqrt(fanIn), max = bias.abs().max().item<float>();
            Assert.True(max <= bound + 1e-7, $"{name}: |b| reaches {max}, beyond 1/√{fanIn} = {bound}");
            if (bias.numel() >= 48) Assert.True(max >= 0.85 * bound, $"{name}: |b| ≤ {max} over {bias.numel()} draws; uniform(±{bound}) reaches 0.85 of it");
            Assert.True(max > 0, $"{name} was left at zero");
        }
    }

    [Fact]
    public void Zero_biases_are_zero()
    {
        torch.manual_seed(12);
        using var zero = Model(BiasInitScheme.Zero);
        Assert.All(zero.named_parameters().Where(p => p.name.EndsWith(".bias", StringComparison.Ordinal)), p => Assert.Equal(0f, p.parameter.abs().max().item<float>()));
    }
}
