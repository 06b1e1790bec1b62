using System.Runtime.CompilerServices;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>Something attached to a model under a name: a <see cref="LoraAdapter"/> or a <see cref="LoraMixture"/>.</summary>
internal interface IAttachedLora
{
    /// <summary>The name, unique among the model's adapters and mixtures.</summary>
    string Name { get; }
}

/// <summary>
/// What applies to a model's output: a <see cref="LoraMix"/> of adapters (a single active adapter is the mix of that
/// adapter with weight 1) or a <see cref="LoraMixture"/>. At most one is active per model.
/// </summary>
internal interface IActiveLora
{
    /// <summary>How error messages name it, e.g. <c>Adapter 'legal'</c>.</summary>
    string Description { get; }
}

/// <summary>
/// The adapters and mixtures attached to one model (<see cref="IAttachedLora"/>, by name), which one thing applies to
/// the output (<see cref="Active"/>, at most one), and the base parameters' <c>requires_grad</c> from before the first
/// attachment froze them, restored when the last one is removed.
/// </summary>
internal sealed class ModelAdapters
{
    private static readonly ConditionalWeakTable<nn.Module, ModelAdapters> Table = new();
    private readonly List<IAttachedLora> _attached = [];
    private (Parameter Parameter, bool RequiresGrad)[] _before = [];

    private ModelAdapters(nn.Module model) => Model = model;

    /// <summary>The model.</summary>
    public nn.Module Model { get; }

    /// <summary>The active mix or mixture (hooked, or a merged adapter), or null.</summary>
    public IActiveLora? Active { get; private set; }

    /// <summary>The entry of <paramref name="model"/>.</summary>
    public static ModelAdapters Of(nn.Module model) => Table.GetValue(model, m => new ModelAdapters(m));

    /// <summary>Adds <paramref name="member"/>; the first one freezes every base parameter.</summary>
    /// <exception cref="ArgumentException">Something of that name is attached already.</exception>
    public void Attach(IAttachedLora member)
    {
        lock (_attached)
        {
            if (_attached.Any(a => a.Name == member.Name))
                throw new ArgumentException($"An adapter named '{member.Name}' is attached to this model already; give each adapter and mixture its own name.", nameof(member));
            if (_attached.Count == 0)
            {
                _before = Model.parameters().Select(p => (p, p.requires_grad)).ToArray();
                foreach (var (p, _) in _before) p.requires_grad = false;
            }

            _attached.Add(member);
        }
    }

    /// <summary>Removes <paramref name="member"/>; after the last one the base parameters get their <c>requires_grad</c> back.</summary>
    public void Detach(IAttachedLora member)
    {
        lock (_attached)
        {
            if (!_attached.Remove(member)) return;
            if (ReferenceEquals(Active, member)) Active = null;
            if (_attached.Count > 0) return;
            foreach (var (p, requiresGrad) in _before) p.requires_grad = requiresGrad;
            _before = [];
        }
    }

    /// <summary>True while <paramref name="member"/> is attached.</summary>
    public bool IsAttached(IAttachedLora member)
    {
        lock (_attached) return _attached.Contains(member);
    }

    /// <summary>Marks <paramref name="active"/> active.</summary>
    /// <exception cref="InvalidOperationException">Something else is active.</exception>
    public void SetActive(IActiveLora active)
    {
        lock (_attached)
        {
            if (Active is { } other && !ReferenceEquals(other, active))
                throw new InvalidOperationException($"{other.Description} is active on this model; deactivate it before activating {active.Description} (one adapter, mix or mixture is active at a time).");
            Active = active;
        }
    }

    /// <summary>Marks nothing active (if <paramref name="active"/> was).</summary>
    public void ClearActive(IActiveLora active)
    {
        lock (_attached)
        {
            if (ReferenceEquals(Active, active)) Active = null;
        }
    }

    /// <summary>The attached adapters' and mixtures' names.</summary>
    public IReadOnlyList<string> Names
    {
        get
        {
            lock (_attached) return _attached.Select(a => a.Name).ToArray();
        }
    }
}
