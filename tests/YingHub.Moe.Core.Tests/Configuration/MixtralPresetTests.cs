using System.Text.Json;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;

namespace YingHub.Moe.Core.Tests.Configuration;

/// <summary>The <c>mixtral</c> preset against Hugging Face's <c>MixtralForCausalLM</c> choices, and <c>intermediate_size</c>.</summary>
public class MixtralPresetTests
{
    [Fact]
    public void Mixtral_has_mixtrals_choices_at_a_cpu_size()
    {
        Assert.Contains("mixtral", MoePresets.Names);
        var o = MoePresets.Get("mixtral");
        Assert.Empty(o.GetValidationErrors());
        Assert.Equal((NormKind.RmsNorm, PositionEncoding.Rope, 1e6, 1e-5), (o.Norm, o.Positions, o.RopeTheta, o.NormEpsilon));
        Assert.Equal((false, false, false, false), (o.Bias, o.HasQkvBias, o.HasAttentionOutputBias, o.LmHeadBias));
        Assert.Equal((256, 4, 8, 2, 32), (o.HiddenSize, o.NumLayers, o.NumHeads, o.KeyValueHeads, o.HeadDim));
        Assert.Equal((8, 2, 896, ExpertActivation.SwiGlu), (o.NumExperts, o.TopK, o.ExpertWidth, o.Activation));
        Assert.Equal((RouterKind.TopK, true, false, 0, 1), (o.Router, o.NormalizeTopKWeights, o.SharedExpert, o.DeepExperts, o.MoeEvery));
        Assert.False(o.TieWordEmbeddings);
        Assert.Null(o.CapacityFactor);
        Assert.Equal((0.0, 0.0, NormPosition.Pre, AttentionScaleRule.HeadDim), (o.Dropout, o.AttentionDropout, o.NormPosition, o.AttentionScale));

        using var stream = typeof(MoePresets).Assembly.GetManifestResourceStream("YingHub.Moe.Core.Presets.mixtral.json")!;
        string source = JsonDocument.Parse(stream).RootElement.GetProperty("_source").GetString()!;
        foreach (string phrase in new[] { "modeling_mixtral.py", "Differs:", "router_aux_loss_coef", "docs/presets.md" }) Assert.Contains(phrase, source);
    }

    [Fact]
    public void Intermediate_size_sets_the_expert_width_and_not_the_dense_width()
    {
        var o = new MoeModelOptions { HiddenSize = 16, NumHeads = 2, NumLayers = 2, NumExperts = 2, TopK = 1, VocabSize = 11, ContextLength = 8,
            Activation = ExpertActivation.SwiGlu, IntermediateSize = 24, MoeEvery = 2, DenseMultiplier = 2 };
        using var model = new MoeForCausalLM(o);
        var shapes = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal([2L, 16, 2 * 24], shapes["layers.1.block_sparse_moe.experts.fc1.weight"]); // fused gate and up
        Assert.Equal([2L, 24, 16], shapes["layers.1.block_sparse_moe.experts.fc2.weight"]);
        Assert.Equal([1L, 16, 2 * 32], shapes["layers.0.mlp.ffn.fc1.weight"]);                     // dense: DenseMultiplier × C
        Assert.Equal(nameof(MoeModelOptions.IntermediateSize), Assert.Single(new MoeModelOptions { IntermediateSize = 0 }.GetValidationErrors()).Field);
    }
}
