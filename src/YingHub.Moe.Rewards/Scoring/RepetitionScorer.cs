using YingHub.Moe.Rewards.Text;

namespace YingHub.Moe.Rewards.Scoring;

/// <summary>
/// Penalty for repetition, the larger of two rates (0..1):
/// repeated lines, lines whose words equal an earlier line's (case and punctuation ignored) / (lines − 1), 0 for
/// fewer than two lines; and repeated n-grams, n-grams of the text's word sequence (across lines) equal to an earlier
/// one / all n-grams, 0 for fewer than n words.
/// </summary>
internal sealed class RepetitionScorer(int ngramSize)
{
    public double Penalty(ParsedText text) => Math.Max(RepeatedLineRate(text), RepeatedNgramRate(text, ngramSize));

    internal static double RepeatedLineRate(ParsedText text)
    {
        int count = text.Lines.Count;
        if (count < 2) return 0;
        int[] ids = text.TokenIds;
        var seen = new HashSet<int>(new RangeComparer(ids, i => text.Lines[i].FirstToken, i => text.Lines[i].TokenCount));
        int repeated = 0;
        for (int i = 0; i < count; i++) repeated += seen.Add(i) ? 0 : 1;
        return (double)repeated / (count - 1);
    }

    internal static double RepeatedNgramRate(ParsedText text, int n)
    {
        int total = text.TokenIds.Length - n + 1;
        if (total <= 0) return 0;
        var seen = new HashSet<int>(total, new RangeComparer(text.TokenIds, i => i, _ => n));
        int repeated = 0;
        for (int i = 0; i < total; i++) repeated += seen.Add(i) ? 0 : 1;
        return (double)repeated / total;
    }

    /// <summary>Compares ranges of word ids named by an index: (start, length) = (<c>start(i)</c>, <c>length(i)</c>).</summary>
    private sealed class RangeComparer(int[] ids, Func<int, int> start, Func<int, int> length) : IEqualityComparer<int>
    {
        public bool Equals(int x, int y) => Range(x).SequenceEqual(Range(y));

        public int GetHashCode(int i)
        {
            var hash = new HashCode();
            foreach (int id in Range(i)) hash.Add(id);
            return hash.ToHashCode();
        }

        private ReadOnlySpan<int> Range(int i) => ids.AsSpan(start(i), length(i));
    }
}
