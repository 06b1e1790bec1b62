using System.Text.Json.Serialization;

namespace YingHub.Moe.Training.Analysis;

/// <summary>Assignments and drops in one position bucket.</summary>
/// <param name="Start">First position of the bucket.</param>
/// <param name="End">One past its last position.</param>
/// <param name="Assignments">Routed assignments (token, choice) at those positions.</param>
/// <param name="Dropped">Of those, dropped by capacity.</param>
public sealed record PositionBucket(
    [property: JsonPropertyName("start")] int Start,
    [property: JsonPropertyName("end")] int End,
    [property: JsonPropertyName("assignments")] long Assignments,
    [property: JsonPropertyName("dropped")] long Dropped)
{
    /// <summary>Dropped / assignments; 0 when the bucket holds no assignment.</summary>
    [JsonPropertyName("dropped_share")]
    public double DroppedShare => Assignments == 0 ? 0 : (double)Dropped / Assignments;
}

/// <summary>
/// The statistics of OpenMoE's routing analysis as pure functions over recorded decisions (see
/// docs/routing-analysis.md): context-independent specialization, early routing learning, drop towards the end, and
/// the expert load. No tensors, no model: each takes arrays and returns numbers.
/// </summary>
public static class RoutingStatistics
{
    /// <summary>
    /// Context-independent specialization: for each token id v, the share of its occurrences routed to its most
    /// frequent expert, <c>max_e n(v, e) / n(v)</c>; averaged over ids weighted by their frequency, which is
    /// <c>Σ_v max_e n(v, e) / N</c>. 1 when every occurrence of each id goes to one expert; the expected value for
    /// routing that ignores the id is the same statistic over shuffled decisions (<see cref="Shuffle"/>).
    /// </summary>
    /// <param name="tokenIds">Token id of each token (N).</param>
    /// <param name="experts">Expert of each token (N), e.g. its top-1 choice.</param>
    /// <returns>The frequency-weighted mean in [0, 1]; 0 when there is no token.</returns>
    /// <exception cref="ArgumentException">The arrays differ in length.</exception>
    public static double Specialization(IReadOnlyList<long> tokenIds, IReadOnlyList<int> experts)
    {
        SameLength(tokenIds, experts, nameof(experts));
        if (tokenIds.Count == 0) return 0;
        var counts = new Dictionary<(long Token, int Expert), long>();
        for (int i = 0; i < tokenIds.Count; i++) counts[(tokenIds[i], experts[i])] = counts.GetValueOrDefault((tokenIds[i], experts[i])) + 1;
        long top = counts.GroupBy(kv => kv.Key.Token).Sum(g => g.Max(kv => kv.Value)); // Σ_v max_e n(v, e)
        return (double)top / tokenIds.Count;
    }

    /// <summary>
    /// The chance baseline of <see cref="Specialization"/>: the decisions permuted among the tokens (Fisher-Yates,
    /// seeded), so each expert keeps its load but no longer depends on the token. Returns a new array.
    /// </summary>
    /// <param name="experts">Expert of each token (N).</param>
    /// <param name="seed">Seed of the permutation.</param>
    public static int[] Shuffle(IReadOnlyList<int> experts, int seed)
    {
        ArgumentNullException.ThrowIfNull(experts);
        var shuffled = experts.ToArray();
        new Random(seed).Shuffle(shuffled);
        return shuffled;
    }

    /// <summary>Early routing learning: the share of tokens whose expert is the same in both arrays (e.g. top-1 of an early and of the final checkpoint on the same tokens).</summary>
    /// <param name="early">Expert of each token under the early checkpoint (N).</param>
    /// <param name="final">Expert of each token under the final checkpoint (N).</param>
    /// <returns>A share in [0, 1]; 0 when there is no token.</returns>
    /// <exception cref="ArgumentException">The arrays differ in length.</exception>
    public static double Agreement(IReadOnlyList<int> early, IReadOnlyList<int> final)
    {
        SameLength(early, final, nameof(final));
        if (early.Count == 0) return 0;
        long same = 0;
        for (int i = 0; i < early.Count; i++) same += early[i] == final[i] ? 1 : 0;
        return (double)same / early.Count;
    }

    /// <summary>
    /// The agreement expected by chance for two routings that are independent given their loads:
    /// <c>Σ_e p_early(e) · p_final(e)</c>, p the share of tokens on each expert.
    /// </summary>
    /// <param name="early">Expert of each token under the early checkpoint (N).</param>
    /// <param name="final">Expert of each token under the final checkpoint (N).</param>
    /// <param name="numExperts">E.</param>
    /// <exception cref="ArgumentException">The arrays differ in length, or an expert is outside [0, E).</exception>
    public static double ChanceAgreement(IReadOnlyList<int> early, IReadOnlyList<int> final, int numExperts)
    {
        SameLength(early, final, nameof(final));
        var p = Load(early, numExperts);
        var q = Load(final, numExperts);
        return p.Zip(q, (a, b) => a * b).Sum();
    }

    /// <summary>
    /// Drop towards the end: assignments and dropped assignments per position bucket. Positions [0, T) are cut into
    /// <paramref name="buckets"/> buckets of nearly equal width; position p falls in bucket <c>⌊p · buckets / T⌋</c>.
    /// </summary>
    /// <param name="positions">Position of each token (N), in [0, T).</param>
    /// <param name="dropped">Whether each assignment was dropped (N·k, token-major).</param>
    /// <param name="topK">k.</param>
    /// <param name="blockLength">T.</param>
    /// <param name="buckets">Number of buckets, in [1, T].</param>
    /// <exception cref="ArgumentException">Lengths do not match, a position is outside [0, T), or the bucket count is out of range.</exception>
    public static IReadOnlyList<PositionBucket> DroppedByPosition(IReadOnlyList<int> positions, IReadOnlyList<bool> dropped, int topK, int blockLength, int buckets)
    {
        ArgumentNullException.ThrowIfNull(positions);
        ArgumentNullException.ThrowIfNull(dropped);
        if (blockLength < 1) throw new ArgumentOutOfRangeException(nameof(blockLength), blockLength, "blockLength must be at least 1.");
        if (buckets < 1 || buckets > blockLength) throw new ArgumentOutOfRangeException(nameof(buckets), buckets, $"buckets must be in [1, blockLength = {blockLength}].");
        if (topK < 1 || dropped.Count != (long)positions.Count * topK)
            throw new ArgumentException($"dropped has {dropped.Count} entries; positions ({positions.Count}) × topK ({topK}) expected.", nameof(dropped));
        var assignments = new long[buckets];
        var drops = new long[buckets];
        for (int i = 0; i < positions.Count; i++)
        {
            int p = positions[i];
            if (p < 0 || p >= blockLength) throw new ArgumentException($"positions[{i}] = {p} is outside [0, {blockLength}).", nameof(positions));
            int b = (int)((long)p * buckets / blockLength);
            assignments[b] += topK;
            for (int j = 0; j < topK; j++) drops[b] += dropped[i * topK + j] ? 1 : 0;
        }

        return Enumerable.Range(0, buckets)
            .Select(b => new PositionBucket(BucketStart(b, buckets, blockLength), BucketStart(b + 1, buckets, blockLength), assignments[b], drops[b]))
            .ToList();
    }

    /// <summary>The expert load: each expert's share of the assignments in <paramref name="experts"/> (any number of entries, e.g. N·k); all 0 when there is none.</summary>
    /// <param name="experts">Expert of each assignment.</param>
    /// <param name="numExperts">E.</param>
    /// <exception cref="ArgumentException">An expert is outside [0, E).</exception>
    public static double[] Load(IReadOnlyList<int> experts, int numExperts)
    {
        ArgumentNullException.ThrowIfNull(experts);
        if (numExperts < 1) throw new ArgumentOutOfRangeException(nameof(numExperts), numExperts, "numExperts must be at least 1.");
        var counts = new long[numExperts];
        for (int i = 0; i < experts.Count; i++)
        {
            int e = experts[i];
            if (e < 0 || e >= numExperts) throw new ArgumentException($"experts[{i}] = {e} is outside [0, {numExperts}).", nameof(experts));
            counts[e]++;
        }

        return counts.Select(c => experts.Count == 0 ? 0 : (double)c / experts.Count).ToArray();
    }

    /// <summary>
    /// Coefficient of variation of a load: population standard deviation over mean, <c>sqrt(Σ (x − m)² / E) / m</c>.
    /// 0 for a perfectly balanced load; sqrt(E − 1) when one expert takes everything. 0 when the mean is 0.
    /// </summary>
    /// <param name="load">A value per expert (at least one).</param>
    public static double CoefficientOfVariation(IReadOnlyList<double> load)
    {
        ArgumentNullException.ThrowIfNull(load);
        if (load.Count == 0) throw new ArgumentException("load has no entries; one per expert expected.", nameof(load));
        double mean = load.Average();
        if (mean == 0) return 0;
        double variance = load.Sum(x => (x - mean) * (x - mean)) / load.Count;
        return Math.Sqrt(variance) / mean;
    }

    private static int BucketStart(int bucket, int buckets, int blockLength) => (int)Math.Ceiling((double)bucket * blockLength / buckets);

    private static void SameLength<TA, TB>(IReadOnlyList<TA> a, IReadOnlyList<TB> b, string name)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Count != b.Count) throw new ArgumentException($"{name} has {b.Count} entries; {a.Count} expected (one per token).", name);
    }
}
