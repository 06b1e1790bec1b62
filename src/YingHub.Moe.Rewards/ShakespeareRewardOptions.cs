using System.Text.Json.Serialization;
using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Rewards;

/// <summary>
/// Weights and settings of <see cref="ShakespeareReward"/>, in the Microsoft.Extensions.Options style (bind it from
/// configuration, check it with <see cref="ValidatableOptionsValidator{TOptions}"/>). JSON names are snake_case.
/// The total is Σ weight × score − Σ weight × penalty, each component in 0..1, so a weight is the most a component
/// can add (or take away).
/// </summary>
public sealed class ShakespeareRewardOptions : IValidatableOptions
{
    /// <summary>The configuration section conventionally bound to these options.</summary>
    public const string SectionName = "Rewards:Shakespeare";

    /// <summary>Weight of the rhyme score (≥ 0). Default 1.</summary>
    [JsonPropertyName("rhyme_weight")]
    public double RhymeWeight { get; set; } = 1.0;

    /// <summary>Weight of the iambic pentameter score (≥ 0). Default 1.</summary>
    [JsonPropertyName("meter_weight")]
    public double MeterWeight { get; set; } = 1.0;

    /// <summary>Weight of the Early Modern keyword score (≥ 0). Default 0.5.</summary>
    [JsonPropertyName("keyword_weight")]
    public double KeywordWeight { get; set; } = 0.5;

    /// <summary>Weight of the line length score (≥ 0). Default 0.5.</summary>
    [JsonPropertyName("line_length_weight")]
    public double LineLengthWeight { get; set; } = 0.5;

    /// <summary>Weight of the coherence score (≥ 0); used only with a language model scorer. Default 0.5.</summary>
    [JsonPropertyName("coherence_weight")]
    public double CoherenceWeight { get; set; } = 0.5;

    /// <summary>Weight of the modern vocabulary penalty (≥ 0). Default 1.</summary>
    [JsonPropertyName("modern_penalty_weight")]
    public double ModernPenaltyWeight { get; set; } = 1.0;

    /// <summary>Weight of the repetition penalty (≥ 0). Default 1.</summary>
    [JsonPropertyName("repetition_penalty_weight")]
    public double RepetitionPenaltyWeight { get; set; } = 1.0;

    /// <summary>Words per line that score 1 on line length (&gt; 0). Default 8, as in YingHub-v2.</summary>
    [JsonPropertyName("target_words_per_line")]
    public double TargetWordsPerLine { get; set; } = 8;

    /// <summary>Distance from the target, in words, at which a line's length score falls (linearly) to 0 (&gt; 0). Default 8.</summary>
    [JsonPropertyName("line_length_tolerance")]
    public double LineLengthTolerance { get; set; } = 8;

    /// <summary>Keywords in one line that give that line the full keyword score (&gt; 0). Default 1.</summary>
    [JsonPropertyName("keywords_per_line_for_full_score")]
    public double KeywordsPerLineForFullScore { get; set; } = 1;

    /// <summary>Modern words per line (averaged over the text) that give the full penalty (&gt; 0). Default 0.25.</summary>
    [JsonPropertyName("modern_words_per_line_for_full_penalty")]
    public double ModernWordsPerLineForFullPenalty { get; set; } = 0.25;

    /// <summary>The n of the repeated n-gram rate, in 1..<see cref="MaxNgramSize"/>. Default 3.</summary>
    [JsonPropertyName("repetition_ngram_size")]
    public int RepetitionNgramSize { get; set; } = 3;

    /// <summary>Perplexity at or below which coherence is 1 (≥ 1). Default 10.</summary>
    [JsonPropertyName("perplexity_for_full_coherence")]
    public double PerplexityForFullCoherence { get; set; } = 10;

    /// <summary>Perplexity at or above which coherence is 0 (&gt; <see cref="PerplexityForFullCoherence"/>). Default 1000.</summary>
    [JsonPropertyName("perplexity_for_zero_coherence")]
    public double PerplexityForZeroCoherence { get; set; } = 1000;

    /// <summary>Early Modern markers (words or phrases); null means <see cref="ShakespeareWordLists.EarlyModernKeywords"/>.</summary>
    [JsonPropertyName("keywords")]
    public IList<string>? Keywords { get; set; }

    /// <summary>Modern words or phrases to penalise; null means <see cref="ShakespeareWordLists.ModernWords"/>.</summary>
    [JsonPropertyName("modern_words")]
    public IList<string>? ModernWords { get; set; }

    /// <summary>Texts scored in parallel by <see cref="ShakespeareReward.ScoreBatch"/>: -1 (all processors) or ≥ 1. Default -1.</summary>
    [JsonPropertyName("max_degree_of_parallelism")]
    public int MaxDegreeOfParallelism { get; set; } = -1;

    /// <summary>The largest allowed <see cref="RepetitionNgramSize"/>.</summary>
    public const int MaxNgramSize = 16;

    /// <summary>
    /// Every problem with these options, each naming the property, its value and the allowed range; empty when valid.
    /// Pure: nothing is thrown or changed.
    /// </summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        Weight(errors, nameof(RhymeWeight), RhymeWeight);
        Weight(errors, nameof(MeterWeight), MeterWeight);
        Weight(errors, nameof(KeywordWeight), KeywordWeight);
        Weight(errors, nameof(LineLengthWeight), LineLengthWeight);
        Weight(errors, nameof(CoherenceWeight), CoherenceWeight);
        Weight(errors, nameof(ModernPenaltyWeight), ModernPenaltyWeight);
        Weight(errors, nameof(RepetitionPenaltyWeight), RepetitionPenaltyWeight);
        Positive(errors, nameof(TargetWordsPerLine), TargetWordsPerLine);
        Positive(errors, nameof(LineLengthTolerance), LineLengthTolerance);
        Positive(errors, nameof(KeywordsPerLineForFullScore), KeywordsPerLineForFullScore);
        Positive(errors, nameof(ModernWordsPerLineForFullPenalty), ModernWordsPerLineForFullPenalty);
        errors.Require(RepetitionNgramSize is >= 1 and <= MaxNgramSize, nameof(RepetitionNgramSize), RepetitionNgramSize, $"[1, {MaxNgramSize}]");
        errors.Require(double.IsFinite(PerplexityForFullCoherence) && PerplexityForFullCoherence >= 1,
            nameof(PerplexityForFullCoherence), PerplexityForFullCoherence, "finite and >= 1");
        errors.Require(double.IsFinite(PerplexityForZeroCoherence) && PerplexityForZeroCoherence > PerplexityForFullCoherence,
            nameof(PerplexityForZeroCoherence), PerplexityForZeroCoherence, $"finite and > {nameof(PerplexityForFullCoherence)} ({PerplexityForFullCoherence})");
        WordList(errors, nameof(Keywords), Keywords);
        WordList(errors, nameof(ModernWords), ModernWords);
        errors.Require(MaxDegreeOfParallelism is -1 or >= 1, nameof(MaxDegreeOfParallelism), MaxDegreeOfParallelism, "-1 (all processors) or >= 1");
        return errors;
    }

    private static void Weight(List<OptionError> errors, string name, double value) =>
        errors.Require(double.IsFinite(value) && value >= 0, name, value, "finite and >= 0");

    private static void Positive(List<OptionError> errors, string name, double value) =>
        errors.Require(double.IsFinite(value) && value > 0, name, value, "finite and > 0");

    private static void WordList(List<OptionError> errors, string name, IList<string>? words)
    {
        if (words is null) return;
        for (int i = 0; i < words.Count; i++)
        {
            errors.Require(!string.IsNullOrWhiteSpace(words[i]) && words[i].Any(char.IsLetterOrDigit), $"{name}[{i}]", $"'{words[i]}'",
                "a word or phrase containing a letter or digit");
        }
    }
}
