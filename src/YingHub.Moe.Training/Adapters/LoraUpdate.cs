using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// A full weight update ΔW per target layer, (out, in) float32, as <see cref="LoraMerging"/> combines several adapters'
/// <c>scale · B A</c>: it can be merged into the base weights (in each layer's own layout) and unmerged again, and
/// turned back into a low-rank adapter by truncated SVD (<see cref="ToAdapter"/>). Owns its tensors.
/// </summary>
public sealed class LoraUpdate : IDisposable
{
    private readonly IReadOnlyList<(LoraTarget Target, Tensor Delta)> _entries;

    internal LoraUpdate(nn.Module model, IReadOnlyList<(LoraTarget Target, Tensor Delta)> entries)
    {
        Model = model;
        _entries = entries;
    }

    /// <summary>The model whose layers the update belongs to.</summary>
    public nn.Module Model { get; }

    /// <summary>The target modules' names, in the model's order.</summary>
    public IReadOnlyList<string> TargetNames => _entries.Select(e => e.Target.Name).ToArray();

    /// <summary>True while the update is merged into the base weights.</summary>
    public bool IsMerged { get; private set; }

    /// <summary>ΔW of <paramref name="module"/>, (out, in) float32 (owned by the update: do not dispose).</summary>
    /// <exception cref="ArgumentException">No such target.</exception>
    public Tensor this[string module] =>
        _entries.FirstOrDefault(e => e.Target.Name == module).Delta
        ?? throw new ArgumentException($"The update has no target '{module}'; its targets: {string.Join(", ", TargetNames)}.", nameof(module));

    /// <summary>Adds every ΔW to its layer's weight. Combine with adapters' own merges at your own risk: nothing tracks the sum.</summary>
    /// <exception cref="InvalidOperationException">Merged already.</exception>
    public void Merge()
    {
        if (IsMerged) throw new InvalidOperationException("The update is merged already.");
        foreach (var (target, delta) in _entries) target.AddToWeight(delta, 1.0);
        IsMerged = true;
    }

    /// <summary>Subtracts every ΔW from its layer's weight again.</summary>
    /// <exception cref="InvalidOperationException">Not merged.</exception>
    public void Unmerge()
    {
        if (!IsMerged) throw new InvalidOperationException("The update is not merged.");
        foreach (var (target, delta) in _entries) target.AddToWeight(delta, -1.0);
        IsMerged = false;
    }

    /// <summary>
    /// A new adapter (inactive, attached to <see cref="Model"/> as <paramref name="name"/>) whose <c>B A</c> is the
    /// best rank-<paramref name="rank"/> approximation of each ΔW (truncated SVD, ΔW ≈ U_r S_r V_rᵀ: B = U_r S_r,
    /// A = V_rᵀ), with alpha = r so the scale is 1; its targets are the exact module names.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="rank"/> is below 1 or above a target's min(out, in), or the name is taken.</exception>
    public LoraAdapter ToAdapter(int rank, string name)
    {
        int limit = _entries.Min(e => Math.Min(e.Target.InFeatures, e.Target.OutFeatures));
        if (rank < 1 || rank > limit) throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank = {rank} is invalid; allowed: [1, {limit}] (the smallest target's min(out, in)).");
        var adapter = new LoraAdapter(Model, new LoraOptions { Rank = rank, Alpha = rank, TargetModules = [.. TargetNames] }, name);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach (var (target, delta) in _entries)
        {
            var (u, s, vh) = torch.linalg.svd(delta, fullMatrices: false);      // (out, k), (k), (k, in)
            var layer = adapter.Layer(target.Name);
            layer.B.copy_(u[.., ..rank] * s[..rank]);                           // (out, r)
            layer.A.copy_(vh[..rank]);                                           // (r, in)
        }

        return adapter;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var (_, delta) in _entries) delta.Dispose();
    }
}
