using System.Runtime.CompilerServices;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// The adapters attached to one model: their names, which one is active (at most one), and the base parameters'
/// <c>requires_grad</c> from before the first adapter froze them, restored when the last one is removed.
/// </summary>
internal sealed class ModelAdapters
{
    private static readonly ConditionalWeakTable<nn.Module, ModelAdapters> Table = new();
    private readonly List<LoraAdapter> _attached = [];
    private (Parameter Parameter, bool RequiresGrad)[] _before = [];

    private ModelAdapters(nn.Module model) => Model = model;

    /// <summary>The model.</summary>
    public nn.Module Model { get; }

    /// <summary>The active adapter (hooked or merged), or null.</summary>
    public LoraAdapter? Active { get; private set; }

    /// <summary>The entry of <paramref name="model"/>.</summary>
    public static ModelAdapters Of(nn.Module model) => Table.GetValue(model, m => new ModelAdapters(m));

    /// <summary>Adds <paramref name="adapter"/>; the first one freezes every base parameter.</summary>
    /// <exception cref="ArgumentException">An adapter of that name is attached already.</exception>
    public void Attach(LoraAdapter adapter)
    {
        lock (_attached)
        {
            if (_attached.Any(a => a.Name == adapter.Name))
                throw new ArgumentException($"An adapter named '{adapter.Name}' is attached to this model already; give each adapter its own name.", nameof(adapter));
            if (_attached.Count == 0)
            {
                _before = Model.parameters().Select(p => (p, p.requires_grad)).ToArray();
                foreach (var (p, _) in _before) p.requires_grad = false;
            }

            _attached.Add(adapter);
        }
    }

    /// <summary>Removes <paramref name="adapter"/>; after the last one the base parameters get their <c>requires_grad</c> back.</summary>
    public void Detach(LoraAdapter adapter)
    {
        lock (_attached)
        {
            if (!_attached.Remove(adapter)) return;
            if (ReferenceEquals(Active, adapter)) Active = null;
            if (_attached.Count > 0) return;
            foreach (var (p, requiresGrad) in _before) p.requires_grad = requiresGrad;
            _before = [];
        }
    }

    /// <summary>Marks <paramref name="adapter"/> active.</summary>
    /// <exception cref="InvalidOperationException">Another adapter is active.</exception>
    public void SetActive(LoraAdapter adapter)
    {
        lock (_attached)
        {
            if (Active is { } other && !ReferenceEquals(other, adapter))
                throw new InvalidOperationException($"Adapter '{other.Name}' is active on this model; deactivate it before activating '{adapter.Name}' (one adapter is active at a time).");
            Active = adapter;
        }
    }

    /// <summary>Marks no adapter active (if <paramref name="adapter"/> was).</summary>
    public void ClearActive(LoraAdapter adapter)
    {
        lock (_attached)
        {
            if (ReferenceEquals(Active, adapter)) Active = null;
        }
    }

    /// <summary>The attached adapters' names.</summary>
    public IReadOnlyList<string> Names
    {
        get
        {
            lock (_attached) return _attached.Select(a => a.Name).ToArray();
        }
    }
}
