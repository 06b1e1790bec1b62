using TorchSharp;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// Which token goes to which expert, sorted by expert so each expert runs once on a contiguous slice. Produced by
/// <see cref="TokenDispatch.Plan"/>; the tensors belong to the plan.
/// </summary>
internal sealed class DispatchPlan : IDisposable
{
    public DispatchPlan(Tensor tokenIndex, Tensor weights, long[] assigned, long[] kept)
    {
        TokenIndex = tokenIndex;
        Weights = weights;
        Assigned = assigned;
        Kept = kept;
    }

    /// <summary>Token (row of the flattened input) of each kept assignment, grouped by expert: (M), int64.</summary>
    public Tensor TokenIndex { get; }

    /// <summary>Gate weight of each kept assignment: (M), differentiable.</summary>
    public Tensor Weights { get; }

    /// <summary>Assignments routed to each expert before capacity: (E).</summary>
    public long[] Assigned { get; }

    /// <summary>Assignments each expert keeps after capacity: (E); expert e's slice follows those of experts 0..e-1.</summary>
    public long[] Kept { get; }

    /// <summary>
    /// Which of the routed assignments <paramref name="indices"/> (N, k) this plan does not keep: (N, k) bool, true
    /// where capacity dropped the assignment; false for padding (<paramref name="tokenMask"/> false), which is not
    /// assigned at all. Rebuilt from the kept (token, expert) pairs, so it reads nothing but the plan.
    /// </summary>
    public Tensor DroppedAssignments(Tensor indices, Tensor? tokenMask)
    {
        using var scope = torch.NewDisposeScope();
        long n = indices.size(0), experts = Kept.Length;
        var expertOfKept = torch.arange(experts, device: indices.device).repeat_interleave(torch.tensor(Kept, device: indices.device)); // (M)
        var keptPairs = torch.zeros(n, experts, dtype: ScalarType.Bool, device: indices.device);                            // (N, E)
        keptPairs.index_put_(torch.tensor(true, device: indices.device), TokenIndex, expertOfKept);
        var dropped = keptPairs.gather(1, indices).logical_not();                                                            // (N, k)
        if (tokenMask is not null) dropped = dropped & tokenMask.unsqueeze(1);                                              // padding is never dropped
        return dropped.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        TokenIndex.Dispose();
        Weights.Dispose();
    }
}

/// <summary>
/// Parameter-free token plumbing of the sparse MoE layer: sort (token, slot) assignments by expert, apply capacity,
/// and combine expert outputs back into token order.
/// </summary>
internal static class TokenDispatch
{
    /// <summary>
    /// Plans the dispatch of N = B·T tokens (row-major: token b·T + t) with k choices each to
    /// <paramref name="experts"/> experts.
    /// <para>
    /// Capacity rule (when <paramref name="capacity"/> is set): an expert keeps at most that many assignments per
    /// batch, ranked by <paramref name="ranking"/>. <see cref="CapacityRankingRule.Position"/>: earlier sequence
    /// positions win, by position t first, across the whole batch (then by row b), so a token can only be displaced by
    /// tokens at the same or earlier positions. <see cref="CapacityRankingRule.Flat"/> (makeMoE): flat token order
    /// b·T + t, so a token can be displaced by earlier positions of its own row and by anything in earlier rows. Either
    /// way never by a later position of its own sequence, so capacity keeps the model causal. (A token's k choices go
    /// to k different experts, so they never compete.) A dropped assignment contributes nothing; the residual
    /// connection carries the token.
    /// </para>
    /// </summary>
    /// <param name="indices">Selected experts (N, k), int64.</param>
    /// <param name="weights">Gate weights (N, k).</param>
    /// <param name="experts">E.</param>
    /// <param name="capacity">Assignments an expert may keep, or null for dropless.</param>
    /// <param name="batch">B, the rows of the flattened tokens (for the capacity priority).</param>
    /// <param name="tokenMask">
    /// Tokens to dispatch (N), bool, or null for all. The others (padding) go to no expert, take no capacity and
    /// contribute nothing: their assignments get the sentinel expert E, so the stable sort puts them last, where the
    /// plan cuts them off.
    /// </param>
    /// <param name="ranking">Which assignments an over-capacity expert keeps (ignored without capacity).</param>
    public static DispatchPlan Plan(Tensor indices, Tensor weights, int experts, long? capacity, long batch = 1, Tensor? tokenMask = null,
        CapacityRankingRule ranking = CapacityRankingRule.Position)
    {
        using var scope = torch.NewDisposeScope();
        long n = indices.size(0), k = indices.size(1);
        // Dropless, or capacity by flat order: token-major order (the stable sort keeps it within each expert).
        // Capacity by position: time-major, so earlier positions win.
        Tensor? timeMajor = capacity is null || ranking == CapacityRankingRule.Flat ? null
            : torch.arange(n, device: indices.device).view(batch, n / batch).t().reshape(-1); // (N)
        var flatExpert = (timeMajor is null ? indices : indices.index_select(0, timeMajor)).reshape(-1); // (N*k)
        var flatWeight = (timeMajor is null ? weights : weights.index_select(0, timeMajor)).reshape(-1); // (N*k)
        if (tokenMask is not null)
        {
            var dispatched = (timeMajor is null ? tokenMask : tokenMask.index_select(0, timeMajor)).unsqueeze(1).expand(n, k).reshape(-1); // (N*k)
            flatExpert = flatExpert.masked_fill(dispatched.logical_not(), experts);                   // (N*k): padding → sentinel E
        }

        var (sortedExpert, order) = flatExpert.sort(dim: 0, descending: false, stable: true); // (N*k), (N*k)
        var counts = flatExpert.bincount(null, experts + (tokenMask is null ? 0 : 1));           // (E) or (E + 1) with the sentinel
        long[] assigned = counts.cpu().data<long>().ToArray();                                // the one host read of the layer
        if (tokenMask is not null)
        {
            assigned = assigned[..experts];
            long real = assigned.Sum();
            (sortedExpert, order, counts) = (sortedExpert.narrow(0, 0, real), order.narrow(0, 0, real), counts.narrow(0, 0, experts)); // drop the sentinel's tail
        }

        long[] kept = assigned;

        if (capacity is { } cap && assigned.Max() > cap)
        {
            kept = assigned.Select(a => Math.Min(a, cap)).ToArray();
            var starts = counts.cumsum(0) - counts;                                                   // (E)
            var rank = torch.arange(order.size(0), device: order.device) - starts.index_select(0, sortedExpert); // (N*k): rank within expert
            order = order.index_select(0, (rank < cap).nonzero().squeeze(1));                         // (M)
        }

        var token = order.div(k, rounding_mode: RoundingMode.floor);                  // (M): position in the (re)ordered tokens
        if (timeMajor is not null) token = timeMajor.index_select(0, token);         // back to row-major token ids
        var w = flatWeight.index_select(0, order);                                    // (M)
        return new DispatchPlan(token.MoveToOuterDisposeScope(), w.MoveToOuterDisposeScope(), assigned, kept);
    }

    /// <summary>
    /// The plan with each expert's slice padded up to a multiple of <paramref name="multiple"/> rows (an expert with no
    /// assignment stays empty): a padding row reads token 0 with gate weight 0, so it adds nothing to the output, its
    /// gradient is zero, and it adds nothing to any weight's gradient or to the router's. <see cref="DispatchPlan.Kept"/>
    /// of the result holds the padded slice lengths (split by those); <see cref="DispatchPlan.Assigned"/> is kept.
    /// Low-precision products on CPU are oneDNN kernels compiled per shape and cached: without padding, the experts'
    /// row counts change every step and every product is compiled anew (docs/benchmarks.md).
    /// </summary>
    public static DispatchPlan PadSlices(DispatchPlan plan, int multiple)
    {
        using var scope = torch.NewDisposeScope();
        var device = plan.TokenIndex.device;
        var tokens = new List<Tensor>();
        var weights = new List<Tensor>();
        var padded = new long[plan.Kept.Length];
        long start = 0;
        for (int e = 0; e < plan.Kept.Length; e++)
        {
            long kept = plan.Kept[e];
            padded[e] = (kept + multiple - 1) / multiple * multiple;
            tokens.Add(plan.TokenIndex.narrow(0, start, kept));
            weights.Add(plan.Weights.narrow(0, start, kept));
            if (padded[e] > kept)
            {
                tokens.Add(torch.zeros(padded[e] - kept, dtype: ScalarType.Int64, device: device));
                weights.Add(torch.zeros(padded[e] - kept, dtype: plan.Weights.dtype, device: device));
            }

            start += kept;
        }

        return new DispatchPlan(torch.cat(tokens, 0).MoveToOuterDisposeScope(), torch.cat(weights, 0).MoveToOuterDisposeScope(), plan.Assigned, padded);
    }

    /// <summary>
    /// Scatters expert outputs <paramref name="expertOutputs"/> (M, C), in plan order, back to (N, C), each scaled by
    /// its gate weight and summed over a token's choices.
    /// </summary>
    public static Tensor Combine(DispatchPlan plan, Tensor expertOutputs, long tokens)
    {
        using var scope = torch.NewDisposeScope();
        // under autocast the experts' outputs are bfloat16 or float16: they are scaled and summed in the gate weights'
        // float32 after one cast, because the backward of a mixed-type product (which would promote too) reduces the
        // weights' gradient on a path that is at times 7-10x slower on CPU (docs/benchmarks.md)
        var outputs = expertOutputs.dtype == plan.Weights.dtype ? expertOutputs : expertOutputs.to(plan.Weights.dtype); // (M, C)
        var scaled = outputs * plan.Weights.unsqueeze(1);                                                  // (M, C)
        var output = torch.zeros(tokens, outputs.size(1), dtype: scaled.dtype, device: outputs.device);    // (N, C): float32 under autocast
        output.index_add_(0, plan.TokenIndex, scaled, 1);
        return output.MoveToOuterDisposeScope();
    }
}
