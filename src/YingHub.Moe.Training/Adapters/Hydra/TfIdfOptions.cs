using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>What a <see cref="TfIdfEmbedder"/> counts as a term.</summary>
public enum TfIdfAnalyzer
{
    /// <summary>Word n-grams of the tokens scikit-learn's default pattern finds (<c>\b\w\w+\b</c>: two or more word characters).</summary>
    Word,

    /// <summary>Character n-grams of the text with every run of two or more white-space characters collapsed to one space (scikit-learn's <c>char</c>).</summary>
    Char,
}

/// <summary>Settings of a <see cref="TfIdfEmbedder"/>, named after scikit-learn's <c>TfidfVectorizer</c>.</summary>
public sealed class TfIdfOptions : IValidatableOptions
{
    /// <summary>The largest n-gram length accepted.</summary>
    public const int MaxNGram = 16;

    /// <summary>Word or character n-grams (<c>analyzer</c>).</summary>
    public TfIdfAnalyzer Analyzer { get; set; } = TfIdfAnalyzer.Word;

    /// <summary>The shortest n-gram (<c>ngram_range[0]</c>); [1, <see cref="MaxNGram"/>].</summary>
    public int NGramMin { get; set; } = 1;

    /// <summary>The longest n-gram (<c>ngram_range[1]</c>); [<see cref="NGramMin"/>, <see cref="MaxNGram"/>].</summary>
    public int NGramMax { get; set; } = 1;

    /// <summary>Lower-case the text first (<c>lowercase</c>).</summary>
    public bool Lowercase { get; set; } = true;

    /// <summary>Keep only the terms with the highest total count over the training documents (<c>max_features</c>; ties: ordinal term order); null keeps all; else ≥ 1.</summary>
    public int? MaxFeatures { get; set; } = 8192;

    /// <summary>Drop terms found in fewer training documents than this (<c>min_df</c> as a count); ≥ 1.</summary>
    public int MinDocumentFrequency { get; set; } = 1;

    /// <summary>Every problem, naming the field, its value and the allowed range.</summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Enum.IsDefined(Analyzer), nameof(Analyzer), Analyzer, "Word or Char");
        errors.Require(NGramMin is >= 1 and <= MaxNGram, nameof(NGramMin), NGramMin, $"[1, {MaxNGram}]");
        errors.Require(NGramMax >= NGramMin && NGramMax <= MaxNGram, nameof(NGramMax), NGramMax, $"[NGramMin = {NGramMin}, {MaxNGram}]");
        errors.Require(MaxFeatures is null or >= 1, nameof(MaxFeatures), MaxFeatures, "null (all terms) or >= 1");
        errors.Require(MinDocumentFrequency >= 1, nameof(MinDocumentFrequency), MinDocumentFrequency, ">= 1");
        return errors;
    }
}
