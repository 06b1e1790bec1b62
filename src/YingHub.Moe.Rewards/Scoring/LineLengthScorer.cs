using YingHub.Moe.Rewards.Text;

namespace YingHub.Moe.Rewards.Scoring;

/// <summary>
/// Closeness of each line's word count to a target: max(0, 1 − |words − target| / tolerance), averaged over lines
/// (0..1; 0 for a text without lines).
/// </summary>
internal sealed class LineLengthScorer(double targetWords, double tolerance)
{
    public double Score(ParsedText text)
    {
        if (text.Lines.Count == 0) return 0;
        double sum = 0;
        foreach (VerseLine line in text.Lines) sum += Math.Max(0.0, 1.0 - Math.Abs(line.TokenCount - targetWords) / tolerance);
        return sum / text.Lines.Count;
    }
}
