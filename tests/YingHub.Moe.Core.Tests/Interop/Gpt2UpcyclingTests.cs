using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Interop;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tests.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Interop;

/// <summary>Upcycling GPT-2's GELU MLP into experts of another activation is refused by default, or reported.</summary>
public sealed class Gpt2UpcyclingTests
{
    private static Gpt2LMHeadModel Gpt2(string activation = "gelu_new")
    {
        torch.manual_seed(5);
        return new Gpt2LMHeadModel(new Gpt2Config { VocabSize = 20, Positions = 8, Embedding = 16, Layers = 1, Heads = 2, Activation = activation });
    }

    private static MoeForCausalLM Moe(ExpertActivation activation) => new(new MoeModelOptions
    {
        VocabSize = 20, ContextLength = 8, HiddenSize = 16, NumHeads = 2, NumLayers = 1, NumExperts = 2, TopK = 1,
        ExpertMultiplier = 4, Activation = activation,
    });

    [Fact]
    public void Relu_experts_are_refused_by_default_naming_both_activations_and_nothing_is_copied()
    {
        using var gpt2 = Gpt2();
        using var moe = Moe(ExpertActivation.Relu);
        double[] before = Tiny.Values(Tiny.Param(moe, "embed_tokens.weight"));
        var ex = Assert.Throws<ArgumentException>(() => Gpt2Upcycling.Initialize(moe, gpt2));
        Assert.Equal("model", ex.ParamName);
        Assert.Contains("activation is Relu", ex.Message);
        Assert.Contains("GELU (activation_function = 'gelu_new')", ex.Message);
        Assert.Contains("allowActivationMismatch", ex.Message);
        Assert.Equal(before, Tiny.Values(Tiny.Param(moe, "embed_tokens.weight")));
    }

    [Fact]
    public void Relu_experts_when_allowed_get_the_weights_and_a_warning()
    {
        using var gpt2 = Gpt2();
        using var moe = Moe(ExpertActivation.Relu);
        var report = Gpt2Upcycling.Initialize(moe, gpt2, allowActivationMismatch: true);
        string warning = Assert.Single(report.Warnings);
        Assert.Contains("Relu", warning);
        Assert.Contains("GELU", warning);
        Assert.Contains(report.Copied, c => c.Key == "layers.0.block_sparse_moe.experts.fc1.weight" && c.Source == "h.0.mlp.c_fc.weight");
        var cFc = Tiny.Values(gpt2.named_parameters().Single(p => p.name == "h.0.mlp.c_fc.weight").parameter); // (C, 4C)
        var fc1 = Tiny.Values(Tiny.Param(moe, "layers.0.block_sparse_moe.experts.fc1.weight"));                // (2, C, 4C)
        Assert.Equal(cFc.Concat(cFc), fc1);
    }

    [Fact]
    public void Gelu_experts_from_gelu_new_have_no_warning()
    {
        using var gpt2 = Gpt2();
        using var moe = Moe(ExpertActivation.Gelu);
        Assert.Empty(Gpt2Upcycling.Initialize(moe, gpt2).Warnings);
    }

    [Fact]
    public void Exact_gelu_into_tanh_gelu_experts_is_copied_with_a_warning_and_differs_below_1e_3()
    {
        using var gpt2 = Gpt2("gelu");
        using var moe = Moe(ExpertActivation.Gelu);
        string warning = Assert.Single(Gpt2Upcycling.Initialize(moe, gpt2).Warnings);
        Assert.Contains("exact (erf)", warning);

        // the bound the warning states: |gelu(x) − gelu_tanh(x)| < 1e-3 everywhere (checked on a dense grid)
        using var scope = torch.NewDisposeScope();
        var x = torch.linspace(-10, 10, 20001, dtype: ScalarType.Float64);
        double gap = (nn.functional.gelu(x) - nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh)).abs().max().item<double>();
        Assert.InRange(gap, 1e-5, 1e-3);
    }
}
