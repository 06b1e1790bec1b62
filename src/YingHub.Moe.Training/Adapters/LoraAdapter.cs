using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// A LoRA adapter (Hu et al. 2021, as Hugging Face PEFT builds it) on a frozen base model: for every target layer
/// (<see cref="LoraOptions.TargetModules"/>) a pair <c>lora_A</c> (r, in), Kaiming-uniform, and <c>lora_B</c>
/// (out, r), zeros; while the adapter is active the layer's output becomes <c>y + (alpha / r) · dropout(x) Aᵀ Bᵀ</c>
/// (a forward hook on the layer; dropout only while the layer is in training mode).
/// <para>
/// The adapter is an <c>nn.Module</c> holding only its own parameters, named as PEFT saves them:
/// <c>base_model.model.&lt;module&gt;.lora_A.weight</c> and <c>.lora_B.weight</c>. Train it with
/// <c>new OptimizerStep(adapter.named_parameters(), ...)</c>: the first adapter attached to a model sets
/// <c>requires_grad = false</c> on every base parameter (the last one removed restores the previous flags), so the
/// base gets no gradient and no optimizer state. Build the adapter after moving the model to its device.
/// </para>
/// <para>
/// Several adapters (distinct <see cref="Name"/>s) may be attached to one model. What applies to the output is one
/// <see cref="LoraMix"/> at a time: <see cref="Activate"/> activates the mix of this adapter alone with weight 1 (and
/// throws while another adapter, mix or <see cref="LoraMixture"/> is active); a mix of several applies them at once. <see cref="Merge"/> adds <c>scale · B A</c> to the base weights
/// in their own layout (the hooks come off, so nothing is added twice) and <see cref="Unmerge"/> subtracts it again.
/// <see cref="Save"/> / <see cref="Load"/> use PEFT's files. Disposing the adapter removes it (<see cref="Remove"/>).
/// </para>
/// </summary>
public sealed class LoraAdapter : nn.Module, IAttachedLora
{
    /// <summary>The name under which PEFT nests the base model's modules (<c>base_model.model.</c>).</summary>
    public const string NamePrefix = "base_model.model.";

    private readonly LoraOptions _options;
    private readonly ModelAdapters _registry;
    private readonly IReadOnlyList<LoraLayer> _layers;
    private LoraMix? _solo; // this adapter alone with weight 1: what Activate makes active
    private bool _attached;

    /// <summary>Attaches a new adapter named <paramref name="name"/> to <paramref name="model"/> (inactive).</summary>
    /// <exception cref="ArgumentException">
    /// Invalid options (naming the field and range), a pattern that matches no module or only modules LoRA cannot
    /// adapt (stacked experts, the LM head), or a name another adapter of the model has.
    /// </exception>
    public LoraAdapter(nn.Module model, LoraOptions options, string name = "default") : base(nameof(LoraAdapter))
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        options.ThrowIfInvalid(nameof(options));
        RegisterComponents(); // no module fields: the layers are registered below, under their PEFT paths
        Name = name;
        _options = options.Clone();
        _registry = ModelAdapters.Of(model);
        try
        {
            var targets = LoraTarget.Find(model, _options.TargetModules);
            _layers = targets.Select(t => new LoraLayer(t, _options.Rank, _options.Scale, _options.Dropout)).ToArray();
            foreach (var layer in _layers) LoraPath.Register(this, NamePrefix + layer.Target.Name, layer);
            _registry.Attach(this);
        }
        catch
        {
            Dispose(); // not attached yet: frees the native module and any layer made
            throw;
        }

        _attached = true;
    }

    /// <summary>The adapter's name (PEFT's adapter name), unique among the model's adapters.</summary>
    public string Name { get; }

    /// <summary>The options (a copy).</summary>
    public LoraOptions Options => _options.Clone();

    /// <summary>The update's scale, alpha / r.</summary>
    public double Scale => _options.Scale;

    /// <summary>The adapted modules' names (as the model's <c>named_modules()</c> gives them), in the model's order.</summary>
    public IReadOnlyList<string> TargetNames => _layers.Select(l => l.Target.Name).ToArray();

    /// <summary>True while the adapter's update applies to the model's output (alone or in the active <see cref="LoraMix"/>, through hooks, or merged).</summary>
    public bool IsActive => _registry.Active is LoraMix mix && mix.Adapters.Contains(this);

    /// <summary>True while the update is merged into the base weights.</summary>
    public bool IsMerged { get; private set; }

    /// <summary>The model the adapter is attached to.</summary>
    public nn.Module Model => _registry.Model;

    internal IReadOnlyList<LoraLayer> Layers => _layers;

    internal bool IsAttached => _attached;

    /// <summary>Makes the update apply to the model's output alone, with weight 1 (no-op when so).</summary>
    /// <exception cref="InvalidOperationException">Another adapter, mix or mixture is active on the model (a mix holding this adapter too), or this one was removed.</exception>
    public void Activate()
    {
        ThrowIfRemoved();
        _solo ??= new LoraMix([(this, 1.0)]);
        _solo.Activate();
    }

    /// <summary>Stops the update from applying, unmerging first when merged; when the adapter is part of the active mix, the whole mix is deactivated. No-op when inactive.</summary>
    public void Deactivate()
    {
        if (_registry.Active is LoraMix mix && mix.Adapters.Contains(this)) mix.Deactivate();
    }

    /// <summary>
    /// Adds <c>scale · B A</c> to every target's weight (in its layout) and takes the hooks off; activates the adapter
    /// first when needed. Do not change A or B while merged: <see cref="Unmerge"/> subtracts the current product.
    /// </summary>
    /// <exception cref="InvalidOperationException">Merged already, another adapter, mix or mixture is active, or this one was removed.</exception>
    public void Merge()
    {
        if (IsMerged) throw new InvalidOperationException($"Adapter '{Name}' is merged already.");
        Activate();
        var solo = _solo!;
        foreach (var layer in _layers)
        {
            using var delta = layer.Delta(); // (out, in)
            layer.Target.AddToWeight(delta, 1.0);
        }

        solo.RemoveHooks();
        IsMerged = true;
    }

    /// <summary>Subtracts <c>scale · B A</c> from every target's weight again and puts the hooks back (the adapter stays active).</summary>
    /// <exception cref="InvalidOperationException">Not merged.</exception>
    public void Unmerge()
    {
        if (!IsMerged) throw new InvalidOperationException($"Adapter '{Name}' is not merged.");
        foreach (var layer in _layers)
        {
            using var delta = layer.Delta(); // (out, in)
            layer.Target.AddToWeight(delta, -1.0);
        }

        IsMerged = false;
        _solo!.AddHooks();
    }

    /// <summary>
    /// Detaches the adapter from the model: deactivates it (unmerging when merged), and, when it was the model's last
    /// adapter, gives the base parameters their <c>requires_grad</c> back. The adapter's own parameters stay readable.
    /// </summary>
    public void Remove()
    {
        if (!_attached) return;
        Deactivate();
        _registry.Detach(this);
        _attached = false;
    }

    /// <summary>The full update <c>scale · B A</c> of target <paramref name="module"/>, (out, in) float32; the caller owns it.</summary>
    /// <exception cref="ArgumentException">The adapter has no such target.</exception>
    public Tensor Delta(string module) => Layer(module).Delta();

    /// <summary>Writes <c>adapter_model.safetensors</c> and <c>adapter_config.json</c> (PEFT's format) into <paramref name="directory"/>, each file atomically.</summary>
    public void Save(string directory) => LoraAdapterFiles.Save(this, directory);

    /// <summary>
    /// Attaches an adapter saved by <see cref="Save"/> (or by PEFT, for a LoRA config with list-valued
    /// <c>target_modules</c>) to <paramref name="model"/>, inactive.
    /// </summary>
    /// <exception cref="InvalidDataException">A file is missing or malformed, a tensor is missing or unexpected, or a tensor's shape differs from the model's target (the message names the tensor).</exception>
    public static LoraAdapter Load(nn.Module model, string directory, string name = "default") => LoraAdapterFiles.Load(model, directory, name);

    internal LoraLayer Layer(string module) =>
        _layers.FirstOrDefault(l => l.Target.Name == module)
        ?? throw new ArgumentException($"Adapter '{Name}' has no target '{module}'; its targets: {string.Join(", ", TargetNames)}.", nameof(module));

    private void ThrowIfRemoved()
    {
        if (!_attached) throw new InvalidOperationException($"Adapter '{Name}' was removed from its model.");
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Remove();
            _solo?.Dispose();
        }

        base.Dispose(disposing);
    }
}
