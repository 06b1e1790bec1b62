using System.Text.Json.Serialization;
using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Analysis;

/// <summary>How <see cref="RoutingReport.Build"/> summarises recordings.</summary>
public sealed record RoutingAnalysisOptions : IValidatableOptions
{
    /// <summary>Position buckets of the drop statistic, in [1, 1024] (fewer when the block is shorter).</summary>
    public int PositionBuckets { get; init; } = 8;

    /// <summary>Seed of the shuffled baseline of the specialization.</summary>
    public int Seed { get; init; } = 1337;

    /// <summary>Token ids listed per expert in the top-token table, in [1, 100].</summary>
    public int TopTokens { get; init; } = 8;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(PositionBuckets is >= 1 and <= 1024, nameof(PositionBuckets), PositionBuckets, "[1, 1024]");
        errors.Require(TopTokens is >= 1 and <= 100, nameof(TopTokens), TopTokens, "[1, 100]");
        return errors;
    }
}

/// <summary>A token id routed to an expert, and how often.</summary>
/// <param name="TokenId">The token id.</param>
/// <param name="Count">Its top-1 assignments to the expert.</param>
/// <param name="Share">Count over the token's occurrences.</param>
public sealed record ExpertToken(
    [property: JsonPropertyName("token_id")] long TokenId,
    [property: JsonPropertyName("count")] long Count,
    [property: JsonPropertyName("share")] double Share);

/// <summary>The statistics of one MoE layer (see <see cref="RoutingStatistics"/>).</summary>
/// <param name="Layer">Decoder layer index.</param>
/// <param name="Specialization">Context-independent specialization of the top-1 choices.</param>
/// <param name="ShuffledSpecialization">The same over the top-1 choices shuffled among tokens (chance baseline).</param>
/// <param name="Load">Each expert's share of all k assignments (before capacity).</param>
/// <param name="LoadCv">Coefficient of variation of <paramref name="Load"/>.</param>
/// <param name="DroppedShare">Share of assignments dropped by capacity.</param>
/// <param name="DroppedByPosition">Assignments and drops per position bucket.</param>
/// <param name="EarlyAgreement">Share of tokens whose top-1 expert is the same under the early checkpoint; null without one.</param>
/// <param name="ChanceAgreement">Σ_e p_early(e) · p_final(e) of the top-1 choices; null without an early checkpoint.</param>
/// <param name="TopTokens">Per expert, the token ids most often routed there (top-1), most frequent first.</param>
public sealed record LayerRoutingReport(
    [property: JsonPropertyName("layer")] int Layer,
    [property: JsonPropertyName("specialization")] double Specialization,
    [property: JsonPropertyName("shuffled_specialization")] double ShuffledSpecialization,
    [property: JsonPropertyName("load")] double[] Load,
    [property: JsonPropertyName("load_cv")] double LoadCv,
    [property: JsonPropertyName("dropped_share")] double DroppedShare,
    [property: JsonPropertyName("dropped_by_position")] IReadOnlyList<PositionBucket> DroppedByPosition,
    [property: JsonPropertyName("early_agreement")] double? EarlyAgreement,
    [property: JsonPropertyName("chance_agreement")] double? ChanceAgreement,
    [property: JsonPropertyName("top_tokens")] IReadOnlyList<IReadOnlyList<ExpertToken>> TopTokens);

/// <summary>
/// The routing analysis of a recording (and optionally an early checkpoint's recording of the same tokens): one
/// <see cref="LayerRoutingReport"/> per MoE layer. Serialises to the JSON that <c>yinghub analyze-routing</c> writes.
/// </summary>
/// <param name="Tokens">N, the recorded tokens.</param>
/// <param name="BlockLength">T.</param>
/// <param name="NumExperts">E.</param>
/// <param name="TopK">k.</param>
/// <param name="CapacityFactor">The capacity factor applied while recording, or null.</param>
/// <param name="Layers">Per MoE layer.</param>
public sealed record RoutingReport(
    [property: JsonPropertyName("tokens")] int Tokens,
    [property: JsonPropertyName("block_length")] int BlockLength,
    [property: JsonPropertyName("num_experts")] int NumExperts,
    [property: JsonPropertyName("top_k")] int TopK,
    [property: JsonPropertyName("capacity_factor")] double? CapacityFactor,
    [property: JsonPropertyName("layers")] IReadOnlyList<LayerRoutingReport> Layers)
{
    /// <summary>Computes every statistic per layer.</summary>
    /// <param name="final">The recording analysed (of the final checkpoint).</param>
    /// <param name="early">An early checkpoint's recording of the same tokens, or null.</param>
    /// <param name="capacityFactor">The capacity factor the recording ran under (reported only).</param>
    /// <param name="options">Buckets, seed and table size.</param>
    /// <exception cref="ArgumentException">The early recording is of other tokens or another layer layout, or the options are invalid.</exception>
    public static RoutingReport Build(RoutingRecording final, RoutingRecording? early, double? capacityFactor, RoutingAnalysisOptions options)
    {
        ArgumentNullException.ThrowIfNull(final);
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        if (early is not null && (!early.TokenIds.AsSpan().SequenceEqual(final.TokenIds) || early.Layers.Count != final.Layers.Count || early.NumExperts != final.NumExperts))
            throw new ArgumentException($"The early recording ({early.Count} tokens, {early.Layers.Count} MoE layers, {early.NumExperts} experts) must cover the same tokens as the final one ({final.Count}, {final.Layers.Count}, {final.NumExperts}).", nameof(early));
        int buckets = Math.Min(options.PositionBuckets, final.BlockLength);
        var layers = new List<LayerRoutingReport>();
        for (int m = 0; m < final.Layers.Count; m++)
        {
            var record = final.Layers[m];
            int[] top = final.TopOne(m);
            double[] load = RoutingStatistics.Load(record.Experts, final.NumExperts);
            int[]? earlyTop = early?.TopOne(m);
            layers.Add(new LayerRoutingReport(
                record.Layer,
                RoutingStatistics.Specialization(final.TokenIds, top),
                RoutingStatistics.Specialization(final.TokenIds, RoutingStatistics.Shuffle(top, options.Seed + m)),
                load,
                RoutingStatistics.CoefficientOfVariation(load),
                record.Dropped.Length == 0 ? 0 : (double)record.Dropped.Count(d => d) / record.Dropped.Length,
                RoutingStatistics.DroppedByPosition(final.Positions, record.Dropped, final.TopK, final.BlockLength, buckets),
                earlyTop is null ? null : RoutingStatistics.Agreement(earlyTop, top),
                earlyTop is null ? null : RoutingStatistics.ChanceAgreement(earlyTop, top, final.NumExperts),
                TopTokensPerExpert(final.TokenIds, top, final.NumExperts, options.TopTokens)));
        }

        return new RoutingReport(final.Count, final.BlockLength, final.NumExperts, final.TopK, capacityFactor, layers);
    }

    /// <summary>Per expert, the <paramref name="count"/> token ids most often routed there (by count, then by id).</summary>
    private static IReadOnlyList<IReadOnlyList<ExpertToken>> TopTokensPerExpert(long[] tokenIds, int[] experts, int numExperts, int count)
    {
        var occurrences = tokenIds.GroupBy(id => id).ToDictionary(g => g.Key, g => (long)g.Count());
        var pairs = tokenIds.Zip(experts).GroupBy(p => p).Select(g => (Token: g.Key.First, Expert: g.Key.Second, Count: (long)g.Count())).ToList();
        return Enumerable.Range(0, numExperts).Select(e => (IReadOnlyList<ExpertToken>)pairs.Where(p => p.Expert == e)
            .OrderByDescending(p => p.Count).ThenBy(p => p.Token).Take(count)
            .Select(p => new ExpertToken(p.Token, p.Count, (double)p.Count / occurrences[p.Token])).ToList()).ToList();
    }
}
