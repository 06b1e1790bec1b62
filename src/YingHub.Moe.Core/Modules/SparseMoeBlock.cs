using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Core.Precision;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// What a sparse MoE block returns. All tensors belong to the receiver.
/// </summary>
/// <param name="Hidden">Output (B, T, C): routed experts (plus the shared expert, if any).</param>
/// <param name="Router">The router's decision for the B·T tokens.</param>
/// <param name="Assigned">Assignments routed to each expert before capacity (E), read on the host during dispatch.</param>
/// <param name="Kept">Assignments each expert kept after capacity (E).</param>
internal sealed record MoeBlockOutput(Tensor Hidden, RouterOutput Router, long[] Assigned, long[] Kept);

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

    /// <summary>The sliding window of expert loads.</summary>
    public UtilizationWindow Window => _window;

    public MoeBlockOutput Forward(Tensor x) // (B, T, C)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.size(0), t = x.size(1), c = x.size(2), n = b * t;
        var flat = x.reshape(n, c);                                  // (N, C)
        var route = _router.call(flat);                              // (N, E) logits/probs, (N, k) weights/indices

        // capacity binds in training only: evaluation and decoding are dropless, so a cached decode equals a full forward
        long? capacity = training && _options.CapacityFactor is { } cf ? Capacity(cf, n) : null;
        var (y, assignedCounts, keptCounts) = n == 1 ? SingleToken(flat, route) : Dispatch(flat, route, capacity, b);
        if (_shared is not null) y = y + _shared.call(flat);

        return new MoeBlockOutput(y.reshape(b, t, c).MoveToOuterDisposeScope(),
            new RouterOutput(route.Logits.MoveToOuterDisposeScope(), route.Probs.MoveToOuterDisposeScope(),
                route.Weights.MoveToOuterDisposeScope(), route.Indices.MoveToOuterDisposeScope()),
            assignedCounts, keptCounts);
    }

    /// <summary>
    /// The sparse path: plan (sort by expert, capacity), run each expert once on its contiguous slice, combine.
    /// Returns (N, C) and the assignments per expert before and after capacity.
    /// </summary>
    private (Tensor Output, long[] Assigned, long[] Kept) Dispatch(Tensor flat, RouterOutput route, long? capacity, long batch)
    {
        using var plan = TokenDispatch.Plan(route.Indices, route.Weights, NumExperts, capacity, batch);
        var routed = Autocast.CastFloat(flat.index_select(0, plan.TokenIndex)); // (M, C), grouped by expert (cast once under autocast)
        // one split into per-expert slices (its backward is one cat); experts with no tokens get null and cost nothing
        var pieces = routed.split(plan.Kept).Select((t, e) => plan.Kept[e] > 0 ? t : null).ToArray(); // E × (kept_e, C)
        int deep = _options.DeepExperts;
        var outputs = (_deepExperts?.Forward(pieces[..deep]) ?? []).Concat(_experts?.Forward(pieces[deep..]) ?? []);
        var present = outputs.OfType<Tensor>().ToList();
        var expertOut = present.Count > 0 ? torch.cat(present, 0) : flat.new_zeros(0, flat.size(1)); // (M, C)
        return (TokenDispatch.Combine(plan, Regularization.Dropout(expertOut, _options.Dropout, training), flat.size(0)), plan.Assigned, plan.Kept);
    }

    /// <summary>
    /// One token (incremental decoding): its k experts run directly, no sort or scatter. Capacity never binds for
    /// one token (ceil(factor · k / E) ≥ 1 and its k experts are distinct). In inference on the CPU the experts run in
    /// managed code (<see cref="ExpertRow"/>), with no tensor between their layers.
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

    /// <summary>ceil(factor · N · k / E) assignments per expert, at least 1 (a tiny tolerance absorbs binary rounding: 1.1 · 100 is 110).</summary>
    private long Capacity(double factor, long tokens) =>
        Math.Max(1, (long)Math.Ceiling(factor * tokens * TopK / NumExperts - 1e-9));

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
