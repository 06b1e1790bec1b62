using YingHub.Moe.Rewards.Text;

namespace YingHub.Moe.Rewards.Scoring;

/// <summary>
/// Early Modern English markers, rated per line and saturating: each line scores
/// min(1, markers in the line / <c>perLineForFullScore</c>); the component is the mean over lines (0..1; 0 for a text
/// without lines). Stuffing one line cannot lift the others.
/// </summary>
internal sealed class KeywordScorer(WordListMatcher keywords, double perLineForFullScore)
{
    public double Score(ParsedText text)
    {
        if (text.Lines.Count == 0) return 0;
        double sum = 0;
        foreach (VerseLine line in text.Lines) sum += Math.Min(1.0, keywords.Count(text, line) / perLineForFullScore);
        return sum / text.Lines.Count;
    }
}
