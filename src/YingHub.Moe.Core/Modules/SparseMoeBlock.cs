using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// What a sparse MoE block returns. All tensors belong to the receiver.
/// </summary>
/// <param name="Hidden">Output (B, T, C): routed experts (plus the shared expert, if any).</param>
/// <param name="Router">The router's decision for the B·T tokens.</param>
/// <param name="TokensPerExpert">Assignments routed to each expert before capacity (E), int64.</param>
/// <param name="Dropped">Assignments dropped by capacity per expert (E), int64.</param>
internal sealed record MoeBlockOutput(Tensor Hidden, RouterOutput Router, Tensor TokensPerExpert, Tensor Dropped);

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
    [ComponentName(Name = "dropout")] private readonly nn.Module<Tensor, Tensor> _dropout;
    [ComponentName(Name = "utilization")] private readonly UtilizationWindow _window;
    private readonly MoeModelOptions _options;

    public SparseMoeBlock(MoeModelOptions options) : base(nameof(SparseMoeBlock))
    {
        _options = options;
        _router = new Router(options);
        if (options.DeepExperts > 0) _deepExperts = new ExpertBank(options.DeepExperts, deep: true, options);
        if (options.NumExperts > options.DeepExperts) _experts = new ExpertBank(options.NumExperts - options.DeepExperts, deep: false, options);
        if (options.SharedExpert) _shared = new DenseFeedForward(options);
        _dropout = nn.Dropout(options.Dropout);
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
        long b = x.shape[0], t = x.shape[1], c = x.shape[2], n = b * t;
        var flat = x.reshape(n, c);                                  // (N, C)
        var route = _router.call(flat);                              // (N, E) logits/probs, (N, k) weights/indices

        long? capacity = _options.CapacityFactor is { } cf ? (long)Math.Ceiling(cf * n * TopK / NumExperts) : null;
        using var plan = TokenDispatch.Plan(route.Indices, route.Weights, NumExperts, capacity);
        var routed = flat.index_select(0, plan.TokenIndex);          // (M, C), grouped by expert
        var outputs = new List<Tensor>(NumExperts);
        for (int e = 0; e < NumExperts; e++)
        {
            if (plan.Kept[e] == 0) continue;                         // experts with no tokens cost nothing
            outputs.Add(RunExpert(e, routed.narrow(0, plan.Offsets[e], plan.Kept[e]))); // (kept_e, C)
        }

        var expertOut = outputs.Count > 0 ? torch.cat(outputs, 0) : flat.new_zeros(0, c); // (M, C)
        var y = TokenDispatch.Combine(plan, _dropout.call(expertOut), n);                  // (N, C)
        if (_shared is not null) y = y + _shared.call(flat);

        var assigned = torch.tensor(plan.Assigned);                                      // (E)
        var dropped = torch.tensor(plan.Assigned.Zip(plan.Kept, (a, k) => a - k).ToArray()); // (E)
        return new MoeBlockOutput(y.reshape(b, t, c).MoveToOuterDisposeScope(),
            new RouterOutput(route.Logits.MoveToOuterDisposeScope(), route.Probs.MoveToOuterDisposeScope(),
                route.Weights.MoveToOuterDisposeScope(), route.Indices.MoveToOuterDisposeScope()),
            assigned.MoveToOuterDisposeScope(), dropped.MoveToOuterDisposeScope());
    }

    /// <summary>Expert <paramref name="expert"/> (0-based over all E) applied to x (n, C) → (n, C).</summary>
    internal Tensor RunExpert(int expert, Tensor x) =>
        expert < _options.DeepExperts ? _deepExperts!.Forward(expert, x) : _experts!.Forward(expert - _options.DeepExperts, x);

    /// <summary>The shared expert, if any.</summary>
    internal DenseFeedForward? Shared => _shared;

    /// <summary>The router.</summary>
    internal Router Router => _router;
}
