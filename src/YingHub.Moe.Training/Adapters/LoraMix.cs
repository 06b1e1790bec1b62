using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// Several adapters of one model applied at once with fixed weights: while the mix is active every target layer's
/// output becomes <c>y + Σ_i w_i s_i dropout_i(x) A_iᵀ B_iᵀ</c> (s_i = alpha_i / r_i; an adapter without that target
/// adds nothing there), through one forward hook per target. The weights are one per adapter for the whole batch
/// (<see cref="SetWeights(IReadOnlyList{double})"/>) or one row per sequence, (B, n)
/// (<see cref="SetWeightsPerSequence"/>), for routed inference where each prompt gets its own mix; they may change between
/// calls. Any finite weight is allowed (0 leaves an adapter out; a negative one subtracts its update).
/// <para>
/// The mix is what is active on a model: <see cref="LoraAdapter.Activate"/> activates the mix of that one adapter with
/// weight 1, and at most one mix (or <see cref="LoraMixture"/>) is active per model, so <see cref="Activate"/> throws
/// while another is. Deactivating any adapter of the active mix deactivates the mix; removing one does too. The mix
/// owns no adapter: disposing it only deactivates it and frees its weights.
/// </para>
/// </summary>
public sealed class LoraMix : IActiveLora, IDisposable
{
    private readonly ModelAdapters _registry;
    private readonly LoraAdapter[] _adapters;
    private readonly double[] _scales;
    private readonly IReadOnlyList<(LoraTarget Target, (int Adapter, LoraLayer Layer)[] Layers)> _targets;
    private readonly List<Action> _removeHooks = [];
    private double[] _weights;
    private Scalar[] _factors;             // w_i · s_i, one per adapter (batch-wide weights)
    private Tensor? _sequenceFactors;      // (B, n) w_bi · s_i, float32 on the adapters' device, or null
    private bool _hooked, _disposed;

    /// <summary>A mix (inactive) of <paramref name="adapters"/>, each with its weight for the whole batch.</summary>
    /// <exception cref="ArgumentException">No adapter, an adapter twice, adapters of different models, a removed adapter, or a weight that is not finite.</exception>
    public LoraMix(IReadOnlyList<(LoraAdapter Adapter, double Weight)> adapters)
    {
        ArgumentNullException.ThrowIfNull(adapters);
        if (adapters.Count == 0) throw new ArgumentException("A mix needs at least one adapter.", nameof(adapters));
        _adapters = adapters.Select(a => a.Adapter ?? throw new ArgumentNullException(nameof(adapters))).ToArray();
        var model = _adapters[0].Model;
        foreach (var adapter in _adapters)
        {
            if (!ReferenceEquals(adapter.Model, model)) throw new ArgumentException($"Adapter '{adapter.Name}' belongs to another model than '{_adapters[0].Name}'.", nameof(adapters));
            if (!adapter.IsAttached) throw new ArgumentException($"Adapter '{adapter.Name}' was removed from its model.", nameof(adapters));
        }

        if (_adapters.GroupBy(a => a.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new ArgumentException($"Adapter '{twice.Key}' is in the mix twice; give it one weight.", nameof(adapters));
        _registry = ModelAdapters.Of(model);
        _scales = _adapters.Select(a => a.Scale).ToArray();
        _targets = _adapters
            .SelectMany((a, i) => a.Layers.Select(l => (Adapter: i, Layer: l)))
            .GroupBy(e => e.Layer.Target.Name, StringComparer.Ordinal)
            .Select(g => (g.First().Layer.Target, g.ToArray()))
            .ToArray();
        _weights = [];
        _factors = [];
        SetWeights(adapters.Select(a => a.Weight).ToArray());
    }

    /// <summary>The adapters, in the order of the weights.</summary>
    public IReadOnlyList<LoraAdapter> Adapters => _adapters;

    /// <summary>The batch-wide weights, one per adapter, or null while per-sequence weights are set.</summary>
    public IReadOnlyList<double>? Weights => _sequenceFactors is null ? _weights.ToArray() : null;

    /// <summary>True while the mix applies to the model's output.</summary>
    public bool IsActive => ReferenceEquals(_registry.Active, this);

    /// <summary>The model the adapters belong to.</summary>
    public nn.Module Model => _registry.Model;

    string IActiveLora.Description => _adapters.Length == 1 && _weights is [1.0] && _sequenceFactors is null
        ? $"Adapter '{_adapters[0].Name}'"
        : $"The mix of adapters {string.Join(", ", _adapters.Select(a => $"'{a.Name}'"))}";

    /// <summary>Makes the mix apply to the model's output (no-op when active).</summary>
    /// <exception cref="InvalidOperationException">Another adapter, mix or mixture is active on the model, an adapter of the mix was removed, or the mix was disposed.</exception>
    public void Activate()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (IsActive) return;
        if (_adapters.FirstOrDefault(a => !a.IsAttached) is { } removed)
            throw new InvalidOperationException($"Adapter '{removed.Name}' was removed from its model; the mix cannot be activated.");
        _registry.SetActive(this);
        AddHooks();
    }

    /// <summary>Stops the mix from applying (no-op when inactive). An adapter of the mix that is merged is unmerged first.</summary>
    public void Deactivate()
    {
        if (!IsActive) return;
        foreach (var adapter in _adapters.Where(a => a.IsMerged)) adapter.Unmerge();
        RemoveHooks();
        _registry.ClearActive(this);
    }

    /// <summary>Sets one weight per adapter (in <see cref="Adapters"/>' order) for every sequence of the next calls.</summary>
    /// <exception cref="ArgumentException">Not one weight per adapter, or a weight that is not finite.</exception>
    public void SetWeights(IReadOnlyList<double> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (weights.Count != _adapters.Length)
            throw new ArgumentException($"The mix has {_adapters.Length} adapters but {weights.Count} weights were given.", nameof(weights));
        for (int i = 0; i < weights.Count; i++)
        {
            if (!double.IsFinite(weights[i])) throw new ArgumentException($"Adapter '{_adapters[i].Name}' has weight {weights[i]}; allowed: a finite number.", nameof(weights));
        }

        ThrowIfMerged();
        ClearWeights();
        _weights = weights.ToArray();
        _factors = _weights.Select((w, i) => (w * _scales[i]).ToScalar()).ToArray();
    }

    /// <summary>
    /// Sets one row of weights per sequence, (B, n) (column i for adapter i), for the next calls, whose batch must be B:
    /// each target's input must have B as its first dimension. The tensor is copied (as float32, to the adapters' device).
    /// </summary>
    /// <exception cref="ArgumentException">Not (B, n) with n the number of adapters, not a floating-point tensor, or a weight that is not finite.</exception>
    public void SetWeightsPerSequence(Tensor weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ObjectDisposedException.ThrowIf(_disposed, this);
        string shape = $"[{string.Join(", ", weights.shape)}]";
        if (weights.dim() != 2 || weights.size(1) != _adapters.Length)
            throw new ArgumentException($"Mix weights have shape {shape}; allowed: (B, {_adapters.Length}), one row per sequence and one column per adapter.", nameof(weights));
        if (!weights.is_floating_point()) throw new ArgumentException($"Mix weights have dtype {weights.dtype}; allowed: a floating-point type.", nameof(weights));
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        if (!torch.isfinite(weights).all().item<bool>()) throw new ArgumentException($"Mix weights {shape} hold a value that is not finite.", nameof(weights));
        ThrowIfMerged();
        var device = _adapters[0].Layers[0].A.device;
        using var scales = torch.tensor(_scales, ScalarType.Float32, device);                                  // (n)
        var factors = weights.to(ScalarType.Float32, device) * scales;                                         // (B, n)
        ClearWeights();
        _sequenceFactors = factors.DetachFromDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        Deactivate();
        ClearWeights();
        _disposed = true;
    }

    /// <summary>Puts the hooks on (also after an adapter's unmerge); no-op when on.</summary>
    internal void AddHooks()
    {
        if (_hooked) return;
        foreach (var (target, layers) in _targets)
        {
            var remover = target.Module.register_forward_hook((m, x, y) => Apply(layers, x, y, m.training));
            _removeHooks.Add(remover.remove);
        }

        _hooked = true;
    }

    /// <summary>Takes the hooks off (also when an adapter merges its update into the weights); no-op when off.</summary>
    internal void RemoveHooks()
    {
        foreach (var remove in _removeHooks) remove();
        _removeHooks.Clear();
        _hooked = false;
    }

    /// <summary>True when the mix is <paramref name="adapter"/> alone with weight 1 for every sequence.</summary>
    internal bool IsSolo(LoraAdapter adapter) =>
        _adapters.Length == 1 && ReferenceEquals(_adapters[0], adapter) && _sequenceFactors is null && _weights is [1.0];

    /// <summary>y (..., out) plus the weighted updates of one target's adapters for its input x (..., in).</summary>
    private Tensor Apply((int Adapter, LoraLayer Layer)[] layers, Tensor x, Tensor y, bool training)
    {
        using var scope = torch.NewDisposeScope();
        var sequence = _sequenceFactors;                                                        // (B, n) or null
        if (sequence is not null && x.size(0) != sequence.size(0))
            throw new ArgumentException($"The mix has per-sequence weights for a batch of {sequence.size(0)}, but target '{layers[0].Layer.Target.Name}' got an input of shape [{string.Join(", ", x.shape)}] (first dimension {x.size(0)}).");
        var result = y;
        foreach (var (i, layer) in layers)
        {
            if (sequence is null)
            {
                if (_weights[i] == 0) continue;
                result = result.add(layer.Update(x, training, y.dtype), _factors[i]);           // (..., out)
                continue;
            }

            var update = layer.Update(x, training, y.dtype);                                   // (..., out)
            long[] shape = Enumerable.Repeat(1L, (int)update.dim()).ToArray();
            shape[0] = update.size(0);
            var factor = sequence[.., i].to(y.dtype).view(shape);                               // (B, 1, ..., 1)
            result = result + update * factor;                                                 // (..., out)
        }

        return (ReferenceEquals(result, y) ? y.alias() : result).MoveToOuterDisposeScope();
    }

    private void ThrowIfMerged()
    {
        if (_adapters.FirstOrDefault(a => a.IsMerged) is { } merged)
            throw new InvalidOperationException($"Adapter '{merged.Name}' is merged; unmerge it before changing the mix's weights.");
    }

    private void ClearWeights()
    {
        foreach (var factor in _factors) factor.Dispose();
        _factors = [];
        _sequenceFactors?.Dispose();
        _sequenceFactors = null;
    }
}
