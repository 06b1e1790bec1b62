using YingHub.Moe.Rewards.Pronunciation;

namespace YingHub.Moe.Rewards.Scoring;

/// <summary>The meter of one line: its best alignment to iambic pentameter.</summary>
/// <param name="Fit">0..1: 1 − cost / <see cref="MeterScorer.CostForZeroFit"/>, clamped.</param>
/// <param name="Syllables">Syllables of the chosen pronunciations.</param>
/// <param name="Stress">Realised stress per syllable (<c>'1'</c> stressed, <c>'0'</c> not), or null when not asked for.</param>
internal readonly record struct LineMeter(double Fit, int Syllables, string? Stress);

/// <summary>
/// Scores how well a line fits iambic pentameter (da-DUM × 5) by dynamic programming over the words' pronunciations
/// (every lexicon alternate is tried) against the template of weak/strong positions. Costs: a primary-stressed
/// syllable of a polysyllable in a weak position <see cref="StressedInWeakCost"/>; an unstressed one in a strong
/// position (a promotion) <see cref="UnstressedInStrongCost"/>; monosyllables and secondary stress take either
/// position free; each syllable more or fewer than 10 <see cref="LengthCostPerSyllable"/>, except an unstressed 11th
/// (feminine ending). The template may open with a trochee (DUM-da). Holds scratch buffers, so not thread-safe: one instance per thread.
/// </summary>
internal sealed class MeterScorer
{
    /// <summary>Syllables of a pentameter line.</summary>
    public const int PentameterSyllables = 10;

    /// <summary>Cost of a lexically stressed syllable on a weak beat.</summary>
    public const double StressedInWeakCost = 1.0;

    /// <summary>Cost of an unstressed syllable of a polysyllable on a strong beat.</summary>
    public const double UnstressedInStrongCost = 0.5;

    /// <summary>Cost of each syllable short of or beyond ten (an unstressed 11th is free).</summary>
    public const double LengthCostPerSyllable = 1.0;

    /// <summary>The cost at which the fit reaches 0: one full clash per foot.</summary>
    public const double CostForZeroFit = 5.0;

    private const int StackSyllables = 32;
    private const int InitialCapacity = 64;      // scratch sizes grow on demand
    private const byte Unstressed = 0;
    private const byte Primary = 1;
    private const byte Secondary = 2;

    private byte[] _stress = new byte[InitialCapacity];
    private int[] _variantStart = new int[InitialCapacity];
    private int[] _variantLength = new int[InitialCapacity];
    private int[] _wordVariants = new int[InitialCapacity];
    private double[] _cost = new double[InitialCapacity];
    private double[] _next = new double[InitialCapacity];
    private int[] _backVariant = new int[InitialCapacity];
    private int[] _backStart = new int[InitialCapacity];

    /// <summary>Aligns the words of a line; <paramref name="words"/> holds each word's sounds.</summary>
    public LineMeter Score(Pronouncer pronouncer, ReadOnlySpan<WordSounds> words, bool withStress)
    {
        if (words.IsEmpty) return new LineMeter(0, 0, withStress ? string.Empty : null);
        int fewest = 0;
        foreach (WordSounds sounds in words) fewest += pronouncer.SyllableRange(sounds).Min;
        if ((fewest - PentameterSyllables) * LengthCostPerSyllable >= CostForZeroFit) return TooLong(pronouncer, words, withStress);
        int positions = Prepare(pronouncer, words);
        (double iambCost, int iambEnd) = Align(words.Length, positions, trochee: false);
        (double trocheeCost, int trocheeEnd) = Align(words.Length, positions, trochee: true);
        bool useTrochee = trocheeCost < iambCost;
        double cost = useTrochee ? trocheeCost : iambCost;
        int syllables = useTrochee ? trocheeEnd : iambEnd;
        string? stress = null;
        if (withStress)
        {
            if (!useTrochee) Align(words.Length, positions, trochee: false);   // back-pointers of the chosen template
            stress = Backtrack(words.Length, positions, syllables, useTrochee);
        }

        return new LineMeter(Math.Clamp(1.0 - cost / CostForZeroFit, 0.0, 1.0), syllables, stress);
    }

    /// <summary>Flattens every pronunciation's stresses into the scratch arrays; returns the most syllables possible.</summary>
    private int Prepare(Pronouncer pronouncer, ReadOnlySpan<WordSounds> words)
    {
        EnsureCapacity(ref _wordVariants, words.Length + 1);
        Span<byte> one = stackalloc byte[StackSyllables];
        int variants = 0, used = 0, positions = 0;
        for (int w = 0; w < words.Length; w++)
        {
            _wordVariants[w] = variants;
            int longest = 0;
            WordSounds sounds = words[w];
            int most = pronouncer.MaxSyllables(sounds);
            Span<byte> buffer = most <= one.Length ? one : new byte[most];
            for (int v = sounds.IsFallback ? -1 : sounds.FirstVariant; ; v = pronouncer.Lexicon.NextVariant(v))
            {
                int n = pronouncer.Stresses(sounds, v, buffer);
                EnsureCapacity(ref _stress, used + n);
                EnsureCapacity(ref _variantStart, variants + 1);
                EnsureCapacity(ref _variantLength, variants + 1);
                buffer[..n].CopyTo(_stress.AsSpan(used));
                _variantStart[variants] = used;
                _variantLength[variants++] = n;
                used += n;
                longest = Math.Max(longest, n);
                if (sounds.IsFallback || pronouncer.Lexicon.NextVariant(v) < 0) break;
            }

            positions += longest;
        }

        _wordVariants[words.Length] = variants;
        EnsureCapacity(ref _cost, positions + 1);
        EnsureCapacity(ref _next, positions + 1);
        EnsureCapacity(ref _backVariant, words.Length * (positions + 1));
        EnsureCapacity(ref _backStart, words.Length * (positions + 1));
        return positions;
    }

    /// <summary>Minimum total cost over pronunciations, and the syllable count reaching it.</summary>
    private (double Cost, int Syllables) Align(int wordCount, int positions, bool trochee)
    {
        Span<double> cost = _cost.AsSpan(0, positions + 1);
        Span<double> next = _next.AsSpan(0, positions + 1);
        cost.Fill(double.PositiveInfinity);
        cost[0] = 0;
        for (int w = 0; w < wordCount; w++)
        {
            next.Fill(double.PositiveInfinity);
            bool last = w == wordCount - 1;
            int row = w * (positions + 1);
            for (int p = 0; p <= positions; p++)
            {
                if (double.IsPositiveInfinity(cost[p])) continue;
                for (int v = _wordVariants[w]; v < _wordVariants[w + 1]; v++)
                {
                    ReadOnlySpan<byte> stresses = _stress.AsSpan(_variantStart[v], _variantLength[v]);
                    double c = cost[p] + WordCost(stresses, p, trochee);
                    int end = p + stresses.Length;
                    if (last) c += LengthCost(end, stresses.IsEmpty ? Primary : stresses[^1]);
                    if (c < next[end])
                    {
                        next[end] = c;
                        _backVariant[row + end] = v;
                        _backStart[row + end] = p;
                    }
                }
            }

            next.CopyTo(cost);
        }

        int best = 0;
        for (int p = 1; p <= positions; p++)
        {
            if (cost[p] < cost[best]) best = p;
        }

        return (cost[best], best);
    }

    private static double WordCost(ReadOnlySpan<byte> stresses, int start, bool trochee)
    {
        if (stresses.Length <= 1) return 0;                                   // monosyllables take either beat
        double cost = 0;
        for (int k = 0; k < stresses.Length; k++)
        {
            bool strong = IsStrong(start + k, trochee);
            if (stresses[k] == Primary && !strong) cost += StressedInWeakCost;
            else if (stresses[k] == Unstressed && strong) cost += UnstressedInStrongCost;
        }

        return cost;
    }

    private static double LengthCost(int syllables, byte lastStress)
    {
        bool feminine = syllables == PentameterSyllables + 1 && lastStress == Unstressed;
        return feminine ? 0 : Math.Abs(syllables - PentameterSyllables) * LengthCostPerSyllable;
    }

    /// <summary>Iambic positions 1, 3, 5, … are strong; an initial trochee swaps positions 0 and 1.</summary>
    private static bool IsStrong(int position, bool trochee) => trochee && position < 2 ? position == 0 : position % 2 == 1;

    private string Backtrack(int wordCount, int positions, int end, bool trochee)
    {
        var chars = new char[end];
        for (int w = wordCount - 1; w >= 0; w--)
        {
            int row = w * (positions + 1);
            int v = _backVariant[row + end];
            int start = _backStart[row + end];
            ReadOnlySpan<byte> stresses = _stress.AsSpan(_variantStart[v], _variantLength[v]);
            for (int k = 0; k < stresses.Length; k++)
            {
                bool strong = IsStrong(start + k, trochee);
                bool stressed = stresses.Length == 1 || stresses[k] == Secondary ? strong : stresses[k] == Primary;
                chars[start + k] = stressed ? '1' : '0';
            }

            end = start;
        }

        return new string(chars);
    }

    /// <summary>
    /// A line too long to reach a positive fit whatever its pronunciations (the length cost alone is
    /// <see cref="CostForZeroFit"/>): fit 0 without alignment, so run-on model output costs linear time. Reports the
    /// first pronunciations, monosyllables on the iambic beat.
    /// </summary>
    private static LineMeter TooLong(Pronouncer pronouncer, ReadOnlySpan<WordSounds> words, bool withStress)
    {
        var stress = withStress ? new System.Text.StringBuilder() : null;
        Span<byte> one = stackalloc byte[StackSyllables];
        int syllables = 0;
        foreach (WordSounds sounds in words)
        {
            int most = pronouncer.MaxSyllables(sounds);
            Span<byte> buffer = most <= one.Length ? one : new byte[most];
            int n = pronouncer.Stresses(sounds, sounds.IsFallback ? -1 : sounds.FirstVariant, buffer);
            for (int k = 0; k < n && stress is not null; k++)
            {
                bool stressed = n == 1 || buffer[k] == Secondary ? IsStrong(syllables + k, trochee: false) : buffer[k] == Primary;
                stress.Append(stressed ? '1' : '0');
            }

            syllables += n;
        }

        return new LineMeter(0, syllables, stress?.ToString());
    }

    private static void EnsureCapacity<T>(ref T[] array, int length)
    {
        if (array.Length < length) Array.Resize(ref array, Math.Max(length, array.Length * 2));
    }
}
