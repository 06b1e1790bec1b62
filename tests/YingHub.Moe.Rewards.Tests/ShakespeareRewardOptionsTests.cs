using Microsoft.Extensions.Options;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Rewards.Pronunciation;

namespace YingHub.Moe.Rewards.Tests;

public sealed class ShakespeareRewardOptionsTests
{
    [Fact]
    public void DefaultsAreValid()
    {
        Assert.Empty(new ShakespeareRewardOptions().GetValidationErrors());
        Assert.True(new ValidatableOptionsValidator<ShakespeareRewardOptions>().Validate(null, new ShakespeareRewardOptions()).Succeeded);
    }

    [Theory]
    [InlineData(nameof(ShakespeareRewardOptions.RhymeWeight), -1.0, ">= 0")]
    [InlineData(nameof(ShakespeareRewardOptions.MeterWeight), double.NaN, ">= 0")]
    [InlineData(nameof(ShakespeareRewardOptions.RepetitionPenaltyWeight), double.PositiveInfinity, ">= 0")]
    [InlineData(nameof(ShakespeareRewardOptions.TargetWordsPerLine), 0.0, "> 0")]
    [InlineData(nameof(ShakespeareRewardOptions.LineLengthTolerance), -2.0, "> 0")]
    [InlineData(nameof(ShakespeareRewardOptions.PerplexityForFullCoherence), 0.5, ">= 1")]
    public void ConstructorNamesTheBadFieldItsValueAndTheRange(string property, double value, string range)
    {
        var options = new ShakespeareRewardOptions();
        typeof(ShakespeareRewardOptions).GetProperty(property)!.SetValue(options, value);

        ArgumentException error = Assert.Throws<ArgumentException>(() => new ShakespeareReward(PronunciationLexicon.Empty, options));
        Assert.Equal("options", error.ParamName);
        Assert.Contains(FormattableString.Invariant($"{property} = {value} is invalid; allowed: "), error.Message);
        Assert.Contains(range, error.Message);
    }

    [Fact]
    public void ValidatorReportsEveryFailure()
    {
        var options = new ShakespeareRewardOptions
        {
            RepetitionNgramSize = 0,
            PerplexityForZeroCoherence = 5,
            Keywords = ["thou", " "],
            MaxDegreeOfParallelism = 0,
        };
        ValidateOptionsResult result = new ValidatableOptionsValidator<ShakespeareRewardOptions>().Validate(null, options);

        Assert.True(result.Failed);
        string[] failures = result.Failures!.ToArray();
        Assert.Equal(4, failures.Length);
        Assert.Contains(failures, f => f.StartsWith("RepetitionNgramSize = 0") && f.Contains("[1, 16]"));
        Assert.Contains(failures, f => f.StartsWith("PerplexityForZeroCoherence = 5") && f.Contains("PerplexityForFullCoherence (10)"));
        Assert.Contains(failures, f => f.StartsWith("Keywords[1] = ' '"));
        Assert.Contains(failures, f => f.StartsWith("MaxDegreeOfParallelism = 0"));
    }

    [Fact]
    public void RejectsAMissingLexicon() =>
        Assert.Throws<ArgumentNullException>("lexicon", () => new ShakespeareReward(null!));
}
