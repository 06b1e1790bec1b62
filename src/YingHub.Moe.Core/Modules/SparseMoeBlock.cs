using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Core.Losses;
using YingHub.Moe.Core.Precision;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>What a caller asks of a sparse MoE block besides its output, and which tokens count.</summary>
/// <param name="DispatchMask">Tokens (N) that run through the experts, bool; false marks padding. Null runs every token.</param>
/// <param name="LossMask">
/// Tokens (N) that count in the auxiliary losses, the statistics and the utilization window, bool: real tokens with a
/// label (not the ignore index). Null counts every token.
/// </param>
/// <param name="LoadBalancing">Compute the Switch load-balancing loss.</param>
/// <param name="ZLoss">Compute the router z-loss.</param>
/// <param name="UtilizationKl">Compute the sliding-window KL to uniform.</param>
/// <param name="Statistics">Compute the layer's <see cref="RouterLayerStats"/>.</param>
/// <param name="Routing">Return the router's logits and choices (<see cref="MoeLayerRouting"/>).</param>
/// <param name="DispatchedTokens">The number of true entries of <paramref name="DispatchMask"/>, when capacity needs it (counted once per forward).</param>
/// <param name="ForcedExperts">
/// Routing replay: the experts (N, k), int64, each token must use (validated by the caller); null lets the router choose.
/// Padding still goes nowhere and capacity still applies.
/// </param>
internal sealed record MoeBlockRequest(Tensor? DispatchMask = null, Tensor? LossMask = null, bool LoadBalancing = false, bool ZLoss = false,
    bool UtilizationKl = false, bool Statistics = false, bool Routing = false, long? DispatchedTokens = null, Tensor? ForcedExperts = null);

/// <summary>
/// What a sparse MoE block returns. All tensors belong to the receiver; the losses, statistics and routing are null
/// unless the <see cref="MoeBlockRequest"/> asked for them.
/// </summary>
/// <param name="Hidden">Output (B, T, C): routed experts (plus the shared expert, if any).</param>
/// <param name="LoadBalancingLoss">Switch load-balancing loss of the layer (), fp32.</param>
/// <param name="ZLoss">Router z-loss of the layer (), fp32.</param>
/// <param name="UtilizationKlLoss">Sliding-window KL to uniform of the layer (), fp32.</param>
/// <param name="Stats">Routing statistics of the layer.</param>
/// <param name="Routing">The router's logits and choices.</param>
/// <param name="Assigned">Assignments of dispatched tokens routed to each expert before capacity (E), read on the host during dispatch.</param>
/// <param name="Kept">Assignments each expert kept after capacity (E).</param>
internal sealed record MoeBlockOutput(Tensor Hidden, Tensor? LoadBalancingLoss, Tensor? ZLoss, Tensor? UtilizationKlLoss,
    RouterLayerStats? Stats, MoeLayerRouting? Routing, long[] Assigned, long[] Kept);

/// <summary>
/// Sparse Mixture-of-Experts feed-forward block with truly sparse dispatch: a (token, expert) pair that was not
/// selected costs no FLOPs. Six steps: flatten, route, plan the dispatch (sort by expert, capacity), run each expert
/// once on its contiguous slice, combine with <c>index_add_</c>, return.
/// </summary>
internal sealed class SparseMoeBlock : nn.Module
{
    [ComponentName(Name = "gate")] private readonly Router _router;
    [ComponentName(Name = "experts")] private readonly ExpertBank? _experts;          // simple experts D..E-1
    [ComponentName(Name = "deep_experts")] private readonly ExpertBank? _deepExperts;  // deep experts 0..D-1
    [ComponentName(Name = "shared_expert")] private readonly DenseFeedForward? _shared;
    [ComponentName(Name = "utilization")] private readonly UtilizationWindow _window;
    private readonly MoeModelOptions _options;

    /// <summary>
    /// Under autocast on CPU, each expert's slice is padded to a multiple of this many rows
    /// (<see cref="TokenDispatch.PadSlices"/>): fewer than this many wasted rows per expert, a few percent of a training
    /// batch's slice, against a kernel compilation for every new slice length.
    /// </summary>
    internal const int LowPrecisionRowMultiple = 64;

    public SparseMoeBlock(MoeModelOptions options) : base(nameof(SparseMoeBlock))
    {
        _options = options;
        _router = new Router(options);
        if (options.DeepExperts > 0) _deepExperts = new ExpertBank(options.DeepExperts, deep: true, options);
        if (options.NumExperts > options.DeepExperts) _experts = new ExpertBank(options.NumExperts - options.DeepExperts, deep: false, options);
        if (options.SharedExpert) _shared = new DenseFeedForward(options);
        _window = new UtilizationWindow(options.UtilizationWindow, options.NumExperts);
        RegisterComponents();
    }

    /// <summary>E.</summary>
    public int NumExperts => _options.NumExperts;

    /// <summary>k, changeable at run time within [1, E].</summary>
    public int TopK
    {
        get => _router.TopK;
        set => _router.TopK = value;
    }

    /// <summary>x (B, T, C) → (B, T, C) with nothing else computed (no losses, statistics or routing).</summary>
    public MoeBlockOutput Forward(Tensor x) => Forward(x, new MoeBlockRequest(), layer: 0);

    /// <summary>
    /// x (B, T, C) → (B, T, C), and what <paramref name="request"/> asks for, computed here where routing is decided:
    /// the auxiliary losses and statistics over the tokens of its loss mask, and (in training) the expert loads of those
    /// tokens recorded into the utilization window.
    /// </summary>
    public MoeBlockOutput Forward(Tensor x, MoeBlockRequest request, int layer)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.size(0), t = x.size(1), c = x.size(2), n = b * t;
        var flat = x.reshape(n, c);                                  // (N, C)
        var route = request.ForcedExperts is null ? _router.call(flat) : _router.Forward(flat, request.ForcedExperts); // (N, E) logits/probs, (N, k) weights/indices

        // capacity binds in training, and in evaluation only when the options say so (then the model refuses a KV cache:
        // a token's capacity depends on how many tokens share its forward)
        long? capacity = _options.CapacityBinds(training)
            ? Capacity(_options.CapacityFactor!.Value, request.DispatchMask is { } d ? request.DispatchedTokens ?? d.sum().item<long>() : n) // padding takes no capacity
            : null;
        // one token's k distinct experts never exceed a capacity of 1; the few-token kernels are dropless
        Tensor? droppedMask = null;                                  // (N, k) bool, only when routing is returned and capacity dropped something
        var (y, assigned, kept) = n == 1 && capacity is null or >= 1 ? SingleToken(flat, route)
            : (capacity is null ? FewTokenDispatch.Run(flat, route, NumExperts, Layers, _options.Activation, training, request.DispatchMask) : null)
              ?? Dispatch(flat, route, capacity, b, request.DispatchMask, request.Routing ? mask => droppedMask = mask : null);
        if (_shared is not null) y = y + _shared.call(flat);

        var mask = request.LossMask;
        var past = request.Statistics || request.UtilizationKl ? _window.Total() : null;                    // (E)
        var lb = request.LoadBalancing ? RouterLosses.LoadBalancing(route.Probs, route.Indices, mask) : null;  // ()
        var z = request.ZLoss ? RouterLosses.ZLoss(route.Logits, mask) : null;                                 // ()
        var kl = request.UtilizationKl ? RouterLosses.WindowKlToUniform(past!, route.Probs, TopK, mask) : null; // ()
        Tensor? load = null;                                                                                  // (E) int64: counted assignments
        if (request.Statistics || training)
            load = mask is null ? torch.tensor(assigned, device: x.device) : RouterLosses.Counts(route.Indices, NumExperts, mask).to(ScalarType.Int64);
        RouterLayerStats? stats = null;
        if (request.Statistics)
        {
            var dropped = torch.tensor(assigned.Zip(kept, (a, k) => a - k).ToArray(), device: x.device);       // (E)
            var utilization = RouterLosses.Utilization(past! + load!, _options.UtilizationThreshold);            // ()
            stats = new RouterLayerStats(layer, load!.MoveToOuterDisposeScope(), dropped.MoveToOuterDisposeScope(), utilization.MoveToOuterDisposeScope());
        }

        if (training) _window.Record(load!);
        var routing = request.Routing
            ? new MoeLayerRouting(layer, route.Logits.MoveToOuterDisposeScope(), route.Indices.MoveToOuterDisposeScope(), route.Weights.MoveToOuterDisposeScope(),
                (droppedMask ?? torch.zeros(route.Indices.size(0), route.Indices.size(1), dtype: ScalarType.Bool, device: x.device)).MoveToOuterDisposeScope())
            : null;
        return new MoeBlockOutput(y.reshape(b, t, c).MoveToOuterDisposeScope(), lb?.MoveToOuterDisposeScope(), z?.MoveToOuterDisposeScope(),
            kl?.MoveToOuterDisposeScope(), stats, routing, assigned, kept);
    }

    /// <summary>
    /// The sparse path: plan (sort by expert, capacity), run each expert once on its contiguous slice, combine.
    /// Returns (N, C) and the assignments per expert before and after capacity.
    /// </summary>
    /// <paramref name="dropped"/>, when given, receives which assignments capacity dropped (N, k) bool, if any was.
    private (Tensor Output, long[] Assigned, long[] Kept) Dispatch(Tensor flat, RouterOutput route, long? capacity, long batch, Tensor? dispatchMask,
        Action<Tensor>? dropped = null)
    {
        using var plan = TokenDispatch.Plan(route.Indices, route.Weights, NumExperts, capacity, batch, dispatchMask, _options.CapacityRanking);
        if (dropped is not null && !plan.Kept.SequenceEqual(plan.Assigned)) dropped(plan.DroppedAssignments(route.Indices, dispatchMask));
        // under autocast on CPU the slices are padded to a few recurring lengths, so the low-precision products' compiled kernels are reused
        using var padded = Autocast.CurrentType is not null && flat.device_type == DeviceType.CPU ? TokenDispatch.PadSlices(plan, LowPrecisionRowMultiple) : null;
        var run = padded ?? plan;
        var routed = Autocast.CastFloat(flat.index_select(0, run.TokenIndex)); // (M, C), grouped by expert (cast once under autocast)
        // one split into per-expert slices (its backward is one cat); experts with no tokens get null and cost nothing
        var pieces = routed.split(run.Kept).Select((t, e) => run.Kept[e] > 0 ? t : null).ToArray(); // E × (kept_e, C)
        int deep = _options.DeepExperts;
        var outputs = (_deepExperts?.Forward(pieces[..deep]) ?? []).Concat(_experts?.Forward(pieces[deep..]) ?? []);
        var present = outputs.OfType<Tensor>().ToList();
        var expertOut = present.Count > 0 ? torch.cat(present, 0) : flat.new_zeros(0, flat.size(1)); // (M, C)
        return (TokenDispatch.Combine(run, Regularization.Dropout(expertOut, _options.Dropout, training), flat.size(0)), plan.Assigned, plan.Kept);
    }

    /// <summary>
    /// One token (incremental decoding): its k experts run directly, no sort or scatter. The caller sends a token here
    /// only when capacity cannot bind (none, or at least 1: its k experts are distinct). In inference on the CPU the
    /// experts run in managed code (<see cref="ExpertRow"/>), with no tensor between their layers.
    /// </summary>
    private (Tensor Output, long[] Assigned, long[] Kept) SingleToken(Tensor flat, RouterOutput route)
    {
        long[] chosen = route.Indices.data<long>().ToArray(); // (k)
        var counts = new long[NumExperts];
        foreach (long e in chosen) counts[e]++;
        if (!training && InferenceViews.Active) // the kept views exist in inference only
        {
            var experts = new ExpertLayer[chosen.Length][];
            for (int j = 0; j < chosen.Length; j++) experts[j] = Layers((int)chosen[j]);
            if (ExpertRow.Applies(flat, experts, _options.Activation))
                return (ExpertRow.Combine(flat, experts, route.Weights.data<float>().ToArray(), _options.Activation), counts, counts);
        }

        var gates = route.Weights.unbind(1); // k × (1)
        Tensor? y = null;
        for (int j = 0; j < chosen.Length; j++)
        {
            var contribution = Regularization.Dropout(RunExpert((int)chosen[j], flat), _options.Dropout, training).mul(gates[j]); // (1, C)
            y = y is null ? contribution : y.add_(contribution);
        }

        return (y!, counts, counts);
    }

    /// <summary>
    /// Assignments an expert may keep out of <paramref name="tokens"/> tokens, by <see cref="MoeModelOptions.CapacityRounding"/>:
    /// ceil(factor · N · k / E), at least 1 (a tiny tolerance absorbs binary rounding: 1.1 · 100 is 110); or makeMoE's
    /// <c>int(N · k / E * factor)</c>, the same double operations in the same order, truncated, so it matches makeMoE
    /// bit for bit (no tolerance: 0.29 · 100 gives 28 there as here), and can be 0.
    /// </summary>
    private long Capacity(double factor, long tokens) => _options.CapacityRounding == CapacityRoundingRule.Floor
        ? (long)((double)(tokens * TopK) / NumExperts * factor)
        : Math.Max(1, (long)Math.Ceiling(factor * tokens * TopK / NumExperts - 1e-9));

    /// <summary>Expert <paramref name="expert"/>'s (0-based over all E) layers as kept views; inference only.</summary>
    private ExpertLayer[] Layers(int expert) =>
        expert < _options.DeepExperts ? _deepExperts!.Layers(expert) : _experts!.Layers(expert - _options.DeepExperts);

    /// <summary>Expert <paramref name="expert"/> (0-based over all E) applied to x (n, C) → (n, C).</summary>
    internal Tensor RunExpert(int expert, Tensor x) =>
        expert < _options.DeepExperts ? _deepExperts!.Forward(expert, x) : _experts!.Forward(expert - _options.DeepExperts, x);

    /// <summary>The shared expert, if any.</summary>
    internal DenseFeedForward? Shared => _shared;

    /// <summary>The router.</summary>
    internal Router Router => _router;
}
