using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using YingHub.Moe.Building;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.DependencyInjection;

namespace YingHub.Moe.Tests;

public class MoeModelBuilderTests
{
    [Fact]
    public void The_fluent_description_ends_in_the_options_it_reads_like()
    {
        var options = MoeModelBuilder.Create()
            .Vocabulary(65).Context(128).Embedding(192).Heads(6).Layers(8).Dropout(0.3)
            .Experts(e => e.Count(6).Deep(2).Activation(ExpertActivation.Gelu).TopK(2).NoisyRouter().Capacity(1.25).Shared(2).Every(2))
            .LoadBalancing(lb => lb.Switch(0.01).ZLoss(0.001).WindowKl(0.01, window: 50))
            .BuildOptions();
        Assert.Equal((65, 128, 192, 6, 8, 0.3, 0.3), (options.VocabSize, options.ContextLength, options.HiddenSize, options.NumHeads, options.NumLayers, options.Dropout, options.AttentionDropout));
        Assert.Equal((6, 2, ExpertActivation.Gelu, 2, RouterKind.NoisyTopK, 1.25, true, 2, 2),
            (options.NumExperts, options.DeepExperts, options.Activation, options.TopK, options.Router, options.CapacityFactor, options.SharedExpert, options.DenseMultiplier, options.MoeEvery));
        Assert.Equal((0.01, 0.001, 0.01, 50), (options.LoadBalancingCoef, options.ZLossCoef, options.UtilizationKlCoef, options.UtilizationWindow));
    }

    [Fact]
    public void The_source_fidelity_options_are_fluent_too()
    {
        var options = MoeModelBuilder.Create()
            .Biases(attentionQkv: false, attentionOutput: true, lmHead: true).BiasInit(BiasInitScheme.Uniform)
            .AttentionScale(AttentionScaleRule.HiddenSize).NormPosition(NormPosition.Post)
            .Experts(e => e.Capacity(1.0, inEvaluation: true, CapacityRoundingRule.Floor, CapacityRankingRule.Flat))
            .BuildOptions();
        Assert.Equal(((bool?)false, (bool?)true, true, BiasInitScheme.Uniform), (options.AttentionQkvBias, options.AttentionOutputBias, options.LmHeadBias, options.BiasInit));
        Assert.Equal((AttentionScaleRule.HiddenSize, NormPosition.Post), (options.AttentionScale, options.NormPosition));
        Assert.Equal(((double?)1.0, true, CapacityRoundingRule.Floor, CapacityRankingRule.Flat), (options.CapacityFactor, options.CapacityInEvaluation, options.CapacityRounding, options.CapacityRanking));
    }

    [Fact]
    public void Grouped_query_heads_and_the_expert_width_are_fluent_too()
    {
        var options = MoeModelBuilder.FromPreset("mixtral").Embedding(64).Heads(8, keyValue: 2).Experts(e => e.Width(224)).BuildOptions();
        Assert.Equal((8, (int?)2, 2, 224), (options.NumHeads, options.NumKeyValueHeads, options.KeyValueHeads, options.ExpertWidth));
        Assert.Equal(4 * 64, MoeModelBuilder.Create().Embedding(64).Experts(e => e.Width(224).Multiplier(4)).BuildOptions().ExpertWidth); // the later call wins
    }

    [Fact]
    public void A_preset_is_a_starting_point_and_the_model_is_built_from_it()
    {
        using var model = MoeModelBuilder.FromPreset("makemoe").Layers(2).Experts(e => e.TopK(1)).Build();
        Assert.Equal(2, model.Options.NumLayers);
        Assert.Equal(1, model.TopK);
        Assert.Equal(8, model.Options.NumExperts);
        var exact = MoeModelBuilder.FromPreset("makemoe").ResidualInit(ResidualInitScheme.Unscaled).BuildOptions(); // makeMoE's own init
        Assert.Equal((InitScheme.KaimingNormal, ResidualInitScheme.Unscaled), (exact.Init, exact.ResidualInit));
        var gpt2 = MoeModelBuilder.FromPreset("makemoe").Init(InitScheme.Normal).BuildOptions(); // a scheme brings its own residual convention
        Assert.Equal((InitScheme.Normal, 0.02, (ResidualInitScheme?)null), (gpt2.Init, gpt2.InitStd, gpt2.ResidualInit));
    }

    [Fact]
    public void Invalid_descriptions_name_every_bad_field()
    {
        var ex = Assert.Throws<ArgumentException>(() => MoeModelBuilder.Create().Embedding(30).Heads(4).Experts(e => e.Count(2).TopK(3)).Build());
        Assert.Contains("HiddenSize = 30 is invalid; allowed: a multiple of NumHeads = 4.", ex.Message);
        Assert.Contains("TopK = 3 is invalid; allowed: [1, NumExperts = 2].", ex.Message);
    }

    [Fact]
    public void AddYingHubMoe_binds_a_configuration_section_over_a_preset_and_builds_models()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Moe:Preset"] = "tiny",
            ["Moe:NumLayers"] = "2",
            ["Moe:Router"] = "NoisyTopK",
        }).Build();
        using var provider = new ServiceCollection().AddYingHubMoe(configuration.GetSection("Moe")).BuildServiceProvider();
        var factory = provider.GetRequiredService<IMoeModelFactory>();
        Assert.Equal(2, factory.Options.NumLayers);
        Assert.Equal(RouterKind.NoisyTopK, factory.Options.Router);
        Assert.Equal(MoePresets.Get("tiny").HiddenSize, factory.Options.HiddenSize);
        using var model = factory.Create();
        Assert.Equal(2, model.Options.NumLayers);
    }

    [Fact]
    public void Invalid_configuration_fails_validation_naming_the_field()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Moe:TopK"] = "9" }).Build();
        using var provider = new ServiceCollection().AddYingHubMoe(configuration.GetSection("Moe")).BuildServiceProvider();
        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<MoeModelOptions>>().Value);
        Assert.Contains("TopK = 9", ex.Message);
        Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IStartupValidator>().Validate());
    }
}
