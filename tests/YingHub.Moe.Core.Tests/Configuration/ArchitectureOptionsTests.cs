using System.Text.Json;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;

namespace YingHub.Moe.Core.Tests.Configuration;

/// <summary>
/// The options that make a preset faithful to its source (attention scale, per-projection biases, bias init, capacity
/// in evaluation, its rounding and ranking, norm position): JSON keys, defaults that keep old <c>config.json</c> files
/// loading as before, and validation messages.
/// </summary>
public class ArchitectureOptionsTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void An_old_config_without_the_new_keys_builds_the_model_it_built_before(bool bias)
    {
        // what a checkpoint written before these options holds: the one bias flag and nothing else about biases
        var options = JsonSerializer.Deserialize<MoeModelOptions>($$"""{ "hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1, "bias": {{(bias ? "true" : "false")}} }""")!;
        Assert.Equal((bias, bias, false), (options.HasQkvBias, options.HasAttentionOutputBias, options.LmHeadBias));
        Assert.Equal((AttentionScaleRule.HeadDim, NormPosition.Pre, BiasInitScheme.Zero), (options.AttentionScale, options.NormPosition, options.BiasInit));
        Assert.Equal((false, CapacityRoundingRule.Ceil, CapacityRankingRule.Position), (options.CapacityInEvaluation, options.CapacityRounding, options.CapacityRanking));
        using var model = new MoeForCausalLM(options);
        var names = model.named_parameters().Select(p => p.name).ToList();
        Assert.Equal(bias, names.Contains("layers.0.self_attn.qkv_proj.bias"));
        Assert.Equal(bias, names.Contains("layers.0.self_attn.o_proj.bias"));
        Assert.DoesNotContain("lm_head.bias", names);
        Assert.True(model.SupportsCachedDecoding);
    }

    [Fact]
    public void The_new_options_round_trip_through_json_with_snake_case_keys()
    {
        var options = new MoeModelOptions
        {
            AttentionScale = AttentionScaleRule.HiddenSize, AttentionQkvBias = false, AttentionOutputBias = true, LmHeadBias = true,
            NormPosition = NormPosition.Post, BiasInit = BiasInitScheme.Uniform, CapacityFactor = 1.0, CapacityInEvaluation = true,
            CapacityRounding = CapacityRoundingRule.Floor, CapacityRanking = CapacityRankingRule.Flat,
        };
        string json = JsonSerializer.Serialize(options);
        foreach (string pair in new[]
                 {
                     "\"attention_scale\":\"HiddenSize\"", "\"attention_qkv_bias\":false", "\"attention_output_bias\":true", "\"lm_head_bias\":true",
                     "\"norm_position\":\"Post\"", "\"bias_init\":\"Uniform\"", "\"capacity_in_eval\":true", "\"capacity_rounding\":\"Floor\"",
                     "\"capacity_ranking\":\"Flat\"",
                 })
            Assert.Contains(pair, json);
        Assert.Equal(json, JsonSerializer.Serialize(JsonSerializer.Deserialize<MoeModelOptions>(json)));
    }

    [Fact]
    public void Enum_values_read_in_lower_case_as_the_issue_writes_them()
    {
        var options = JsonSerializer.Deserialize<MoeModelOptions>("""{ "norm_position": "post", "capacity_rounding": "floor", "capacity_ranking": "flat", "attention_scale": "hiddensize" }""")!;
        Assert.Equal((NormPosition.Post, CapacityRoundingRule.Floor, CapacityRankingRule.Flat, AttentionScaleRule.HiddenSize),
            (options.NormPosition, options.CapacityRounding, options.CapacityRanking, options.AttentionScale));
    }

    [Theory]
    [InlineData("LmHeadBias = True is invalid; allowed: false with TieWordEmbeddings (a tied head has no bias of its own).")]
    [InlineData("AttentionScale = 5 is invalid; allowed: HeadDim, HiddenSize.")]
    [InlineData("NormPosition = 2 is invalid; allowed: Pre, Post.")]
    [InlineData("BiasInit = 9 is invalid; allowed: Zero, Uniform.")]
    [InlineData("CapacityRounding = -1 is invalid; allowed: Ceil, Floor.")]
    [InlineData("CapacityRanking = 3 is invalid; allowed: Position, Flat.")]
    public void Invalid_new_options_name_the_field_the_value_and_the_range(string message)
    {
        var options = new MoeModelOptions();
        switch (message.Split(' ')[0])
        {
            case "LmHeadBias": options.LmHeadBias = true; options.TieWordEmbeddings = true; break;
            case "AttentionScale": options.AttentionScale = (AttentionScaleRule)5; break;
            case "NormPosition": options.NormPosition = (NormPosition)2; break;
            case "BiasInit": options.BiasInit = (BiasInitScheme)9; break;
            case "CapacityRounding": options.CapacityRounding = (CapacityRoundingRule)(-1); break;
            case "CapacityRanking": options.CapacityRanking = (CapacityRankingRule)3; break;
        }

        Assert.Equal(message, Assert.Single(options.GetValidationErrors()).Message);
        var ex = Assert.Throws<ArgumentException>(() => new MoeForCausalLM(options));
        Assert.Contains(message, ex.Message);
    }
}
