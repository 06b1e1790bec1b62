using System.Text.Json;
using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Core.Tests.Configuration;

/// <summary>
/// What the <c>makemoe</c> and <c>yinghub-v2</c> presets keep from their sources and what they change (docs/presets.md
/// tables both), and that their <c>_source</c> says so.
/// </summary>
public class PresetSourceTests
{
    [Fact]
    public void Makemoe_keeps_the_library_rules_where_it_departs_from_makemoe()
    {
        var o = MoePresets.Get("makemoe");
        Assert.Equal(AttentionScaleRule.HeadDim, o.AttentionScale);                                   // not C**-0.5
        Assert.Null(o.CapacityFactor);                                                                // dropless
        Assert.Equal((true, true, false), (o.HasQkvBias, o.HasAttentionOutputBias, o.LmHeadBias));    // the one-flag layout
        Assert.Equal((ResidualInitScheme.Zero, BiasInitScheme.Zero, NormPosition.Pre), (o.ResidualInit, o.BiasInit, o.NormPosition));
        Assert.True(o.NoiseTemperatureMax > o.NoiseTemperatureMin);                                   // a learnable temperature
    }

    [Fact]
    public void Yinghub_v2_keeps_its_sources_biases_pre_norm_and_clamp()
    {
        var o = MoePresets.Get("yinghub-v2");
        Assert.Equal(NormPosition.Pre, o.NormPosition);                                               // its blocks are pre-norm
        Assert.Equal((false, true, true), (o.HasQkvBias, o.HasAttentionOutputBias, o.LmHeadBias));    // bias=False on q/k/v only
        Assert.Equal(0.0, o.EmbeddingDropout);                                                        // no dropout on its embeddings
        Assert.Equal((0.5, 2.0), (o.NoiseTemperatureMin, o.NoiseTemperatureMax));                     // torch.clamp(temperature, 0.5, 2.0)
        Assert.Equal(AttentionScaleRule.HeadDim, o.AttentionScale);                                   // changed: the standard scale
        Assert.Null(o.CapacityFactor);
    }

    [Theory]
    [InlineData("makemoe", new[] { "(1) attention scores scaled by 1/sqrt(head_dim)", "(2) dropless", "(7)", "makemoe-exact" })]
    [InlineData("yinghub-v2", new[] { "Kept:", "Changed", "norm_position stays Pre", "(11)" })]
    [InlineData("makemoe-exact", new[] { "C**-0.5", "int(B*T*k/E * 1.0)", "One difference remains" })]
    public void Each_source_names_what_the_preset_keeps_and_changes(string preset, string[] phrases)
    {
        using var stream = typeof(MoePresets).Assembly.GetManifestResourceStream($"YingHub.Moe.Core.Presets.{preset}.json")!;
        string source = JsonDocument.Parse(stream).RootElement.GetProperty("_source").GetString()!;
        foreach (string phrase in phrases) Assert.Contains(phrase, source);
        Assert.Contains("docs/presets.md", source);
    }
}
