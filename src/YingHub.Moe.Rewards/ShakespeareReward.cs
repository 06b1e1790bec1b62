using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Rewards.Pronunciation;
using YingHub.Moe.Rewards.Scoring;

namespace YingHub.Moe.Rewards;

/// <summary>
/// The Shakespeare-style reward: a weighted sum of rhyme scheme, iambic pentameter, Early Modern keywords, line length
/// and (with a language model) coherence, minus weighted modern-vocabulary and repetition penalties. Every component
/// is in 0..1 (see <see cref="RewardComponentNames"/>); weights come from <see cref="ShakespeareRewardOptions"/>.
/// Pronunciations come from a <see cref="PronunciationLexicon"/>, with spelling rules for unknown words, so scoring
/// never fails on a word (see <see cref="Statistics"/>). Thread-safe.
/// </summary>
/// <example>
/// <code>
/// var reward = new ShakespeareReward(PronunciationLexicon.Load("cmudict.dict"));
/// RewardResult r = reward.Score("Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:");
/// double meter = r.Components[RewardComponentNames.Meter];
/// </code>
/// </example>
public sealed class ShakespeareReward : IRewardFunction
{
    private readonly VerseAnalyzer _analyzer;
    private readonly ILanguageModelScorer? _languageModel;
    private readonly double _rhymeWeight, _meterWeight, _keywordWeight, _lineLengthWeight, _coherenceWeight;
    private readonly double _modernWeight, _repetitionWeight, _fullCoherence, _zeroCoherence;
    private readonly int _parallelism;

    /// <summary>Creates the reward. The options are read once here; later changes to them have no effect.</summary>
    /// <param name="lexicon">Pronunciations, e.g. <see cref="PronunciationLexicon.Load(string)"/> of the CMU dictionary.</param>
    /// <param name="options">Weights and settings; null for the defaults.</param>
    /// <param name="languageModel">Perplexity scorer for the coherence component; null leaves coherence out.</param>
    /// <exception cref="ArgumentNullException"><paramref name="lexicon"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="options"/> are invalid; the message lists every problem.</exception>
    public ShakespeareReward(PronunciationLexicon lexicon, ShakespeareRewardOptions? options = null, ILanguageModelScorer? languageModel = null)
    {
        ArgumentNullException.ThrowIfNull(lexicon);
        options ??= new ShakespeareRewardOptions();
        options.ThrowIfInvalid(nameof(options));
        _analyzer = new VerseAnalyzer(new Pronouncer(lexicon), options);
        _languageModel = options.CoherenceWeight > 0 ? languageModel : null;
        (_rhymeWeight, _meterWeight, _keywordWeight, _lineLengthWeight, _coherenceWeight) =
            (options.RhymeWeight, options.MeterWeight, options.KeywordWeight, options.LineLengthWeight, options.CoherenceWeight);
        (_modernWeight, _repetitionWeight) = (options.ModernPenaltyWeight, options.RepetitionPenaltyWeight);
        (_fullCoherence, _zeroCoherence) = (options.PerplexityForFullCoherence, options.PerplexityForZeroCoherence);
        _parallelism = options.MaxDegreeOfParallelism;
    }

    /// <summary>How many words were pronounced, and how many of them by the spelling-rule fallback, since creation or <see cref="ResetStatistics"/>.</summary>
    public PronunciationStatistics Statistics => _analyzer.Pronouncer.Statistics;

    /// <summary>Sets <see cref="Statistics"/> back to zero.</summary>
    public void ResetStatistics() => _analyzer.Pronouncer.ResetStatistics();

    /// <inheritdoc />
    /// <remarks>
    /// <see cref="RewardResult.Components"/> holds every text component and, when a language model was supplied and
    /// <see cref="ShakespeareRewardOptions.CoherenceWeight"/> is positive, <see cref="RewardComponentNames.Coherence"/>.
    /// A text without words scores 0 on everything (the language model is not called).
    /// </remarks>
    public RewardResult Score(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        VerseScores scores = _analyzer.Analyze(text, detailed: false);
        return Compose(scores, Coherence(text, scores));
    }

    /// <inheritdoc />
    /// <remarks>
    /// The text components run in parallel (up to <see cref="ShakespeareRewardOptions.MaxDegreeOfParallelism"/>);
    /// the language model then gets one <see cref="ILanguageModelScorer.Perplexities"/> call for the batch, on the
    /// calling thread.
    /// </remarks>
    public IReadOnlyList<RewardResult> ScoreBatch(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        for (int i = 0; i < texts.Count; i++)
        {
            if (texts[i] is null) throw new ArgumentNullException(nameof(texts), $"{nameof(texts)}[{i}] is null.");
        }

        var scores = new VerseScores[texts.Count];
        Parallel.For(0, texts.Count, new ParallelOptions { MaxDegreeOfParallelism = _parallelism },
            i => scores[i] = _analyzer.Analyze(texts[i], detailed: false));

        double?[] coherence = BatchCoherence(texts, scores);
        var results = new RewardResult[texts.Count];
        for (int i = 0; i < results.Length; i++) results[i] = Compose(scores[i], coherence[i]);
        return results;
    }

    /// <summary>
    /// Scores <paramref name="text"/> and explains it: the rhyme scheme found (<c>ABAB CDCD EFEF GG</c>) and, per
    /// line, the syllable count, the realised stress pattern (<c>0101010101</c>) and the meter fit.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    public TextAnalysis Analyze(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        VerseScores scores = _analyzer.Analyze(text, detailed: true);
        RewardResult reward = Compose(scores, Coherence(text, scores));
        return new TextAnalysis(reward, scores.RhymeScheme ?? string.Empty, scores.Lines ?? [], scores.FallbackWords);
    }

    private double? Coherence(string text, VerseScores scores)
    {
        if (_languageModel is null) return null;
        return scores.LineCount == 0 ? 0 : ToCoherence(_languageModel.Perplexity(text));
    }

    private double?[] BatchCoherence(IReadOnlyList<string> texts, VerseScores[] scores)
    {
        var result = new double?[texts.Count];
        if (_languageModel is null) return result;
        for (int i = 0; i < texts.Count; i++) result[i] = 0;
        var indices = Enumerable.Range(0, texts.Count).Where(i => scores[i].LineCount > 0).ToArray();
        if (indices.Length == 0) return result;
        IReadOnlyList<double> perplexities = _languageModel.Perplexities(indices.Select(i => texts[i]).ToArray());
        if (perplexities.Count != indices.Length)
        {
            throw new InvalidOperationException(
                $"{nameof(ILanguageModelScorer)}.{nameof(ILanguageModelScorer.Perplexities)} returned {perplexities.Count} values for {indices.Length} texts.");
        }

        for (int k = 0; k < indices.Length; k++) result[indices[k]] = ToCoherence(perplexities[k]);
        return result;
    }

    private double ToCoherence(double perplexity) => PerplexityMapping.ToCoherence(perplexity, _fullCoherence, _zeroCoherence);

    private RewardResult Compose(VerseScores s, double? coherence)
    {
        var components = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            [RewardComponentNames.Rhyme] = s.Rhyme,
            [RewardComponentNames.Meter] = s.Meter,
            [RewardComponentNames.Keywords] = s.Keywords,
            [RewardComponentNames.LineLength] = s.LineLength,
            [RewardComponentNames.ModernPenalty] = s.ModernPenalty,
            [RewardComponentNames.RepetitionPenalty] = s.RepetitionPenalty,
        };
        double total = _rhymeWeight * s.Rhyme + _meterWeight * s.Meter + _keywordWeight * s.Keywords
            + _lineLengthWeight * s.LineLength - _modernWeight * s.ModernPenalty - _repetitionWeight * s.RepetitionPenalty;
        if (coherence is double c)
        {
            components[RewardComponentNames.Coherence] = c;
            total += _coherenceWeight * c;
        }

        return new RewardResult(total, components);
    }
}
