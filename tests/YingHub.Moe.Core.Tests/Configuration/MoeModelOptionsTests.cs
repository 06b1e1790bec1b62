using Microsoft.Extensions.Options;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;

namespace YingHub.Moe.Core.Tests.Configuration;

public class MoeModelOptionsTests
{
    [Theory]
    [InlineData("TopK = 5 is invalid; allowed: [1, NumExperts = 4].")]
    [InlineData("HiddenSize = 30 is invalid; allowed: a multiple of NumHeads = 4.")]
    [InlineData("Dropout = -0.1 is invalid; allowed: [0, 1).")]
    [InlineData("EmbeddingDropout = 1 is invalid; allowed: [0, 1), or null for Dropout's value.")]
    [InlineData("CapacityFactor = 0 is invalid; allowed: (0, 1024] or null (dropless).")]
    [InlineData("MoeEvery = 3 is invalid; allowed: [1, NumLayers = 2].")]
    [InlineData("ResidualInit = 7 is invalid; allowed: Scaled, Zero, Unscaled, or null for the scheme's convention.")]
    [InlineData("Init = -1 is invalid; allowed: Normal, KaimingNormal, Xavier.")]
    public void Invalid_options_name_the_field_the_value_and_the_range(string message)
    {
        var options = new MoeModelOptions { NumExperts = 4, NumHeads = 4, HiddenSize = 32, NumLayers = 2 };
        switch (message.Split(' ')[0])
        {
            case "TopK": options.TopK = 5; break;
            case "HiddenSize": options.HiddenSize = 30; break;
            case "Dropout": options.Dropout = -0.1; break;
            case "EmbeddingDropout": options.EmbeddingDropout = 1; break;
            case "CapacityFactor": options.CapacityFactor = 0; break;
            case "MoeEvery": options.MoeEvery = 3; break;
            case "ResidualInit": options.ResidualInit = (ResidualInitScheme)7; break;
            case "Init": options.Init = (InitScheme)(-1); break;
        }

        Assert.Contains(options.GetValidationErrors(), e => e.Message == message);
        var ex = Assert.Throws<ArgumentException>(() => new MoeForCausalLM(options));
        Assert.Contains(message, ex.Message);
        Assert.Equal("options", ex.ParamName);
        var result = new ValidatableOptionsValidator<MoeModelOptions>().Validate(null, options);
        Assert.True(result.Failed);
        Assert.Contains(message, result.FailureMessage);
    }

    [Fact]
    public void Defaults_are_valid_and_every_error_is_listed_at_once()
    {
        Assert.Empty(new MoeModelOptions().GetValidationErrors());
        var bad = new MoeModelOptions { TopK = 0, Dropout = 1.5, VocabSize = 0 };
        Assert.Equal(new[] { "VocabSize", "Dropout", "TopK" }, bad.GetValidationErrors().Select(e => e.Field));
        Assert.Same(ValidateOptionsResult.Success, new ValidatableOptionsValidator<MoeModelOptions>().Validate(null, new MoeModelOptions()));
    }

    [Fact]
    public void Options_round_trip_through_json_with_hugging_face_keys()
    {
        var options = new MoeModelOptions { NumExperts = 6, TopK = 2, Positions = PositionEncoding.Rope, CapacityFactor = 1.25, ResidualInit = ResidualInitScheme.Zero };
        string json = System.Text.Json.JsonSerializer.Serialize(options);
        Assert.Contains("\"num_local_experts\":6", json);
        Assert.Contains("\"residual_init\":\"Zero\"", json);
        Assert.Contains("\"num_experts_per_tok\":2", json);
        Assert.Contains("\"position_encoding\":\"Rope\"", json);
        var back = System.Text.Json.JsonSerializer.Deserialize<MoeModelOptions>(json)!;
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(back), json);
    }
}

public class MoePresetsTests
{
    [Theory]
    [InlineData("tiny")]
    [InlineData("makemoe")]
    [InlineData("YingHub-V2")]
    public void Every_preset_loads_valid_and_builds(string name)
    {
        var options = MoePresets.Get(name);
        Assert.Empty(options.GetValidationErrors());
        using var model = new MoeForCausalLM(options);
        Assert.True(model.ActiveParameterCount < model.ParameterCount);
    }

    [Fact]
    public void Presets_carry_their_sources_settings()
    {
        var makemoe = MoePresets.Get("makemoe");
        Assert.Equal((128, 8, 8, 32, 8, 2), (makemoe.HiddenSize, makemoe.NumHeads, makemoe.NumLayers, makemoe.ContextLength, makemoe.NumExperts, makemoe.TopK));
        Assert.Equal((RouterKind.NoisyTopK, ExpertActivation.Relu, InitScheme.KaimingNormal, 0.1, 0.1), (makemoe.Router, makemoe.Activation, makemoe.Init, makemoe.Dropout, makemoe.AttentionDropout));
        Assert.Equal(0.0, makemoe.EmbeddingDropout); // makeMoE adds token and position embeddings without dropout
        Assert.Equal(ResidualInitScheme.Zero, makemoe.ResidualInit); // the preset's one departure from makeMoE (its init)
        Assert.Null(MoePresets.Get("yinghub-v2").ResidualInit); // GPT-2's scaled normal init
        var v2 = MoePresets.Get("yinghub-v2");
        Assert.Equal((192, 6, 8, 128, 6, 2, 0.3, 0.1), (v2.HiddenSize, v2.NumHeads, v2.NumLayers, v2.ContextLength, v2.NumExperts, v2.DeepExperts, v2.Dropout, v2.StochasticDepth));
        Assert.Same(MoePresets.Get("tiny").GetType(), typeof(MoeModelOptions));
        Assert.NotSame(MoePresets.Get("tiny"), MoePresets.Get("tiny"));
    }

    [Fact]
    public void Unknown_preset_lists_the_known_ones()
    {
        var ex = Assert.Throws<ArgumentException>(() => MoePresets.Get("huge"));
        Assert.Contains("tiny, makemoe, yinghub-v2", ex.Message);
    }
}
