using System.Buffers;
using YingHub.Moe.Rewards.Pronunciation;
using YingHub.Moe.Rewards.Scoring;
using YingHub.Moe.Rewards.Text;

namespace YingHub.Moe.Rewards;

/// <summary>The text components of one text (coherence aside), and the per-line details when asked for.</summary>
internal sealed record VerseScores(
    double Rhyme, double Meter, double Keywords, double LineLength, double ModernPenalty, double RepetitionPenalty,
    int LineCount, int FallbackWords, string? RhymeScheme, LineAnalysis[]? Lines);

/// <summary>
/// Parses a text once and runs every text component over it. Thread-safe: the lexicon and word lists are read-only,
/// the meter scratch buffers are per thread.
/// </summary>
internal sealed class VerseAnalyzer
{
    [ThreadStatic]
    private static MeterScorer? t_meter;

    private readonly KeywordScorer _keywords;
    private readonly ModernVocabularyScorer _modern;
    private readonly LineLengthScorer _lineLength;
    private readonly RepetitionScorer _repetition;

    public VerseAnalyzer(Pronouncer pronouncer, ShakespeareRewardOptions options)
    {
        Pronouncer = pronouncer;
        _keywords = new KeywordScorer(
            new WordListMatcher((IEnumerable<string>?)options.Keywords ?? ShakespeareWordLists.EarlyModernKeywords), options.KeywordsPerLineForFullScore);
        _modern = new ModernVocabularyScorer(
            new WordListMatcher((IEnumerable<string>?)options.ModernWords ?? ShakespeareWordLists.ModernWords), options.ModernWordsPerLineForFullPenalty);
        _lineLength = new LineLengthScorer(options.TargetWordsPerLine, options.LineLengthTolerance);
        _repetition = new RepetitionScorer(options.RepetitionNgramSize);
    }

    public Pronouncer Pronouncer { get; }

    public VerseScores Analyze(string text, bool detailed)
    {
        ParsedText parsed = ParsedText.Parse(text);
        int tokenCount = parsed.Tokens.Count;
        WordSounds[] rented = ArrayPool<WordSounds>.Shared.Rent(Math.Max(1, tokenCount));
        try
        {
            Span<WordSounds> sounds = rented.AsSpan(0, tokenCount);
            int fallbackWords = 0;
            for (int t = 0; t < tokenCount; t++)
            {
                sounds[t] = Pronouncer.Resolve(parsed.Word(t));
                fallbackWords += sounds[t].IsFallback ? 1 : 0;
            }

            IReadOnlyList<VerseLine> lines = parsed.Lines;
            MeterScorer meter = t_meter ??= new MeterScorer();
            var meters = new LineMeter[lines.Count];
            double meterSum = 0;
            for (int i = 0; i < lines.Count; i++)
            {
                meters[i] = meter.Score(Pronouncer, sounds.Slice(lines[i].FirstToken, lines[i].TokenCount), detailed);
                meterSum += meters[i].Fit;
            }

            RhymeSchemeResult rhyme = RhymeSchemeScorer.Score(parsed, sounds, Pronouncer, detailed);
            LineAnalysis[]? details = detailed ? Details(parsed, meters, rhyme.Labels!) : null;
            return new VerseScores(
                rhyme.Score,
                lines.Count == 0 ? 0 : meterSum / lines.Count,
                _keywords.Score(parsed),
                _lineLength.Score(parsed),
                _modern.Penalty(parsed),
                _repetition.Penalty(parsed),
                lines.Count,
                fallbackWords,
                rhyme.Scheme,
                details);
        }
        finally
        {
            ArrayPool<WordSounds>.Shared.Return(rented);
        }
    }

    private static LineAnalysis[] Details(ParsedText parsed, LineMeter[] meters, char[] labels)
    {
        var result = new LineAnalysis[meters.Length];
        for (int i = 0; i < result.Length; i++)
        {
            VerseLine line = parsed.Lines[i];
            string lineText = parsed.Original.Substring(line.Start, line.Length).Trim();
            result[i] = new LineAnalysis(lineText, line.TokenCount, meters[i].Syllables, meters[i].Stress ?? string.Empty, meters[i].Fit, labels[i]);
        }

        return result;
    }
}
