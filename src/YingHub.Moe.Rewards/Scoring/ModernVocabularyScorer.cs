using YingHub.Moe.Rewards.Text;

namespace YingHub.Moe.Rewards.Scoring;

/// <summary>
/// Penalty for modern vocabulary: min(1, matches / (lines × <c>perLineForFullPenalty</c>)), a rate of listed words per
/// line that saturates at 1 (0..1; 0 for a text without lines).
/// </summary>
internal sealed class ModernVocabularyScorer(WordListMatcher modernWords, double perLineForFullPenalty)
{
    public double Penalty(ParsedText text)
    {
        if (text.Lines.Count == 0) return 0;
        int matches = 0;
        foreach (VerseLine line in text.Lines) matches += modernWords.Count(text, line);
        return Math.Min(1.0, matches / (text.Lines.Count * perLineForFullPenalty));
    }
}
