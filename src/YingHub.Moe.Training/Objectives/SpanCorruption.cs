namespace YingHub.Moe.Training.Objectives;

/// <summary>
/// T5's span corruption noise (<c>random_spans_noise_mask</c>): which tokens of a source are corrupted, as spans. Of L
/// tokens, round(L·r) are corrupted (at least 1, at most L − 1), in round(noise / μ) spans (at least 1); the noise and
/// the kept tokens are each cut into that many non-empty segments uniformly at random and interleaved, kept first.
/// </summary>
public static class SpanCorruption
{
    /// <summary>Corrupted tokens and spans for a source of <paramref name="length"/> tokens (≥ 2).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A length below 2, or a rate or mean span out of range.</exception>
    public static (int Noise, int Spans) Counts(int length, double rate, double meanSpan)
    {
        if (length < 2) throw new ArgumentOutOfRangeException(nameof(length), length, "Span corruption needs a source of at least 2 tokens.");
        if (rate is not (> 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(rate), rate, "The corruption rate must be in (0, 1).");
        if (!(meanSpan >= 1)) throw new ArgumentOutOfRangeException(nameof(meanSpan), meanSpan, "The mean span length must be at least 1.");
        int noise = Math.Clamp((int)Math.Round(length * rate), 1, length - 1);
        int spans = Math.Max(1, (int)Math.Round(noise / meanSpan));
        return (noise, Math.Min(spans, Math.Min(noise, length - noise))); // every span and every gap before it holds a token
    }

    /// <summary>
    /// The longest source whose corrupted sequence fits in <paramref name="capacity"/> tokens: the mode tokens, the
    /// kept tokens with one sentinel per span, then each span after its sentinel (modeTokens + L + 2 · spans).
    /// </summary>
    /// <exception cref="ArgumentException">Not even a source of 2 tokens fits.</exception>
    public static int SourceLength(int capacity, double rate, double meanSpan, int modeTokens)
    {
        for (int length = capacity - modeTokens; length >= 2; length--)
        {
            if (modeTokens + length + 2 * Counts(length, rate, meanSpan).Spans <= capacity) return length;
        }

        throw new ArgumentException($"A sequence of {capacity} tokens has no room for span corruption (mean span {meanSpan}, rate {rate}).", nameof(capacity));
    }

    /// <summary>True where a token of a source of <paramref name="length"/> tokens is corrupted; the first token never is.</summary>
    public static bool[] NoiseMask(int length, double rate, double meanSpan, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        var (noise, spans) = Counts(length, rate, meanSpan);
        int[] kept = Segments(length - noise, spans, random), corrupted = Segments(noise, spans, random);
        var mask = new bool[length];
        int at = 0;
        for (int i = 0; i < spans; i++)
        {
            at += kept[i];
            for (int j = 0; j < corrupted[i]; j++) mask[at++] = true;
        }

        return mask;
    }

    /// <summary><paramref name="items"/> cut into <paramref name="segments"/> non-empty parts, each cut uniformly at random.</summary>
    internal static int[] Segments(int items, int segments, Random random)
    {
        // segments − 1 distinct cut points among the items − 1 gaps (a partial Fisher–Yates shuffle), sorted
        var gaps = Enumerable.Range(1, items - 1).ToArray();
        for (int i = 0; i < segments - 1; i++)
        {
            int j = random.Next(i, gaps.Length);
            (gaps[i], gaps[j]) = (gaps[j], gaps[i]);
        }

        var cuts = gaps.Take(segments - 1).Order().Append(items).ToArray();
        var lengths = new int[segments];
        for (int i = 0, previous = 0; i < segments; previous = cuts[i], i++) lengths[i] = cuts[i] - previous;
        return lengths;
    }
}
