using TorchSharp;
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
        Offsets = new long[kept.Length];
        for (int e = 1; e < kept.Length; e++) Offsets[e] = Offsets[e - 1] + kept[e - 1];
    }

    /// <summary>Token (row of the flattened input) of each kept assignment, grouped by expert: (M), int64.</summary>
    public Tensor TokenIndex { get; }

    /// <summary>Gate weight of each kept assignment: (M), differentiable.</summary>
    public Tensor Weights { get; }

    /// <summary>Assignments routed to each expert before capacity: (E).</summary>
    public long[] Assigned { get; }

    /// <summary>Assignments each expert keeps after capacity: (E).</summary>
    public long[] Kept { get; }

    /// <summary>Start of each expert's slice in the kept order: (E).</summary>
    public long[] Offsets { get; }

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
    /// Plans the dispatch of N tokens with k choices each to <paramref name="experts"/> experts.
    /// <para>
    /// Capacity rule (when <paramref name="capacity"/> is set): an expert keeps at most that many assignments per
    /// batch. Priority is by choice first (every token's first choice before any second choice, as in GShard), then
    /// by position in the flattened batch (row b, position t → b·T + t): earlier sequence positions win. A dropped
    /// assignment contributes nothing; the residual connection carries the token.
    /// </para>
    /// </summary>
    /// <param name="indices">Selected experts (N, k), int64.</param>
    /// <param name="weights">Gate weights (N, k).</param>
    /// <param name="experts">E.</param>
    /// <param name="capacity">Assignments an expert may keep, or null for dropless.</param>
    public static DispatchPlan Plan(Tensor indices, Tensor weights, int experts, long? capacity)
    {
        using var scope = torch.NewDisposeScope();
        long n = indices.shape[0];
        var flatExpert = indices.t().reshape(-1);                       // (k*N), choice-major: slot * N + token
        var flatWeight = weights.t().reshape(-1);                       // (k*N)
        var (sortedExpert, order) = flatExpert.sort(dim: 0, descending: false, stable: true); // (k*N), (k*N)
        long[] assigned = flatExpert.bincount(null, experts).data<long>().ToArray(); // (E): the one host read of the layer
        long[] kept = assigned;

        if (capacity is { } cap && assigned.Max() > cap)
        {
            kept = assigned.Select(a => Math.Min(a, cap)).ToArray();
            var starts = torch.tensor(assigned).cumsum(0) - torch.tensor(assigned);   // (E)
            var rank = torch.arange(order.shape[0]) - starts.index_select(0, sortedExpert); // (k*N): rank within expert
            var keep = (rank < cap).nonzero().squeeze(1);                                     // (M)
            order = order.index_select(0, keep);
        }

        var token = order.remainder(n);                  // (M)
        var w = flatWeight.index_select(0, order);       // (M)
        return new DispatchPlan(token.MoveToOuterDisposeScope(), w.MoveToOuterDisposeScope(), assigned, kept);
    }

    /// <summary>
    /// Scatters expert outputs <paramref name="expertOutputs"/> (M, C), in plan order, back to (N, C), each scaled by
    /// its gate weight and summed over a token's choices.
    /// </summary>
    public static Tensor Combine(DispatchPlan plan, Tensor expertOutputs, long tokens)
    {
        using var scope = torch.NewDisposeScope();
        var scaled = expertOutputs * plan.Weights.unsqueeze(1);                                           // (M, C)
        var output = torch.zeros(tokens, expertOutputs.shape[1], dtype: expertOutputs.dtype, device: expertOutputs.device); // (N, C)
        output.index_add_(0, plan.TokenIndex, scaled, 1);
        return output.MoveToOuterDisposeScope();
    }
}
