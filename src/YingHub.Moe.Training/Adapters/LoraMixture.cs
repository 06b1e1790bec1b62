using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Losses;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// Hydra-β, a mixture of LoRA experts (MoLE) on a frozen base: every target layer (<see cref="LoraOptions.TargetModules"/>
/// of <see cref="LoraMixtureOptions.Lora"/>) gets n LoRA experts (A_i, B_i) and a small gate on its input x, a Linear
/// in -> n in fp32 like the model's router. While the mixture is active the layer's output becomes
/// <c>y + Σ_{i ∈ topk} g_i(x) · (alpha / r) · dropout(x) A_iᵀ B_iᵀ</c>, with g the softmax over the k picked gate logits
/// (per token; noisy in training when <see cref="LoraMixtureOptions.NoisyGate"/>). The experts are computed densely
/// (every expert for every token, weighted 0 unless picked), which is cheap at LoRA ranks.
/// <para>
/// Train experts and gates jointly with <c>new OptimizerStep(mixture.TrainableParameters(), ...)</c> and a loss of
/// <c>lm + BalanceLossCoefficient · mixture.BalanceLoss()</c> (the Switch loss of the model's router,
/// <see cref="RouterLosses.LoadBalancing"/>). Attaching the mixture freezes the base as an adapter does; it shares the
/// model's adapter names and its one-active rule with <see cref="LoraAdapter"/> and <see cref="LoraMix"/>.
/// <see cref="AddExpert"/> adds a domain to a trained mixture without retraining the others.
/// </para>
/// <para>
/// Parameters, named PEFT-style: <c>base_model.model.&lt;module&gt;.experts.{i}.lora_A.weight</c> (r, in),
/// <c>.experts.{i}.lora_B.weight</c> (out, r), <c>.gate.{i}.weight</c> (1, in), row i of the gate, and
/// <c>.gate_noise.{i}.weight</c> (1, in) when noisy. <see cref="Save"/> / <see cref="Load"/> write and read them.
/// </para>
/// </summary>
public sealed class LoraMixture : nn.Module, IAttachedLora, IActiveLora
{
    private readonly LoraMixtureOptions _options;
    private readonly ModelAdapters _registry;
    private readonly IReadOnlyList<LoraMixtureLayer> _layers;
    private readonly List<Action> _removeHooks = [];
    private bool _attached;

    /// <summary>Attaches a new mixture named <paramref name="name"/> to <paramref name="model"/> (inactive); every B starts at zero.</summary>
    /// <exception cref="ArgumentException">Invalid options (naming the field and range), a target pattern LoRA cannot use (see <see cref="LoraAdapter"/>), or a name another adapter or mixture of the model has.</exception>
    public LoraMixture(nn.Module model, LoraMixtureOptions options, string name = "mixture") : base(nameof(LoraMixture))
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
            var targets = LoraTarget.Find(model, _options.Lora.TargetModules);
            _layers = targets.Select(t => new LoraMixtureLayer(t, _options.Lora, _options.NumExperts, _options.NoisyGate)).ToArray();
            foreach (var layer in _layers) LoraPath.Register(this, LoraAdapter.NamePrefix + layer.Target.Name, layer);
            _registry.Attach(this);
        }
        catch
        {
            Dispose();
            throw;
        }

        _attached = true;
    }

    /// <summary>The mixture's name, unique among the model's adapters and mixtures.</summary>
    public string Name { get; }

    /// <summary>The options (a copy; <see cref="LoraMixtureOptions.NumExperts"/> counts the experts added since).</summary>
    public LoraMixtureOptions Options => _options.Clone();

    /// <summary>Experts per target layer, n.</summary>
    public int NumExperts => _options.NumExperts;

    /// <summary>Experts picked per token, k.</summary>
    public int TopK => _options.TopK;

    /// <summary>The adapted modules' names, in the model's order.</summary>
    public IReadOnlyList<string> TargetNames => _layers.Select(l => l.Target.Name).ToArray();

    /// <summary>True while the mixture applies to the model's output.</summary>
    public bool IsActive => ReferenceEquals(_registry.Active, this);

    /// <summary>The model the mixture is attached to.</summary>
    public nn.Module Model => _registry.Model;

    string IActiveLora.Description => $"Mixture '{Name}'";

    internal IReadOnlyList<LoraMixtureLayer> Layers => _layers;

    /// <summary>Makes the mixture apply to the model's output (no-op when active).</summary>
    /// <exception cref="InvalidOperationException">Another adapter, mix or mixture is active on the model, or this one was removed.</exception>
    public void Activate()
    {
        if (!_attached) throw new InvalidOperationException($"Mixture '{Name}' was removed from its model.");
        if (IsActive) return;
        _registry.SetActive(this);
        foreach (var layer in _layers)
        {
            var remover = layer.Target.Module.register_forward_hook((m, x, y) => layer.Apply(x, y, _options.TopK, m.training));
            _removeHooks.Add(remover.remove);
        }
    }

    /// <summary>Stops the mixture from applying (no-op when inactive).</summary>
    public void Deactivate()
    {
        if (!IsActive) return;
        foreach (var remove in _removeHooks) remove();
        _removeHooks.Clear();
        _registry.ClearActive(this);
    }

    /// <summary>Detaches the mixture from the model (deactivating it; the last attachment gives the base its <c>requires_grad</c> back).</summary>
    public void Remove()
    {
        if (!_attached) return;
        Deactivate();
        _registry.Detach(this);
        _attached = false;
    }

    /// <summary>
    /// The load-balancing loss of the last training-mode forward: the mean over target layers of the Switch loss
    /// <c>n · Σ_i f_i P_i</c> (<see cref="RouterLosses.LoadBalancing"/>; f_i the share of the N·k picks that went to
    /// expert i, P_i the mean gate probability of expert i; 1 at perfect balance, n when one expert takes all). A scalar
    /// fp32 tensor the caller owns, differentiable in the gates. Releases the forward's gate records, so call it once
    /// per forward; multiply it by <see cref="LoraMixtureOptions.BalanceLossCoefficient"/> and add it to the LM loss.
    /// </summary>
    /// <exception cref="InvalidOperationException">A target layer has run no training-mode forward since the last call (the mixture is inactive, or the model is in eval mode).</exception>
    public Tensor BalanceLoss()
    {
        if (_layers.FirstOrDefault(l => l.Record is null) is { } missing)
            throw new InvalidOperationException($"Mixture '{Name}': target '{missing.Target.Name}' has no gate decision to balance; run a forward in training mode (model.train()) with the mixture active before each BalanceLoss().");
        using var scope = torch.NewDisposeScope();
        var losses = _layers.Select(l => RouterLosses.LoadBalancing(l.Record!.Probs, l.Record.Indices)).ToArray(); // L × ()
        var loss = torch.stack(losses).mean();                                                                    // ()
        foreach (var layer in _layers) layer.ClearRecord();
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>The parameters that train (<c>requires_grad</c>), by name, for an optimizer.</summary>
    public IEnumerable<(string name, Parameter parameter)> TrainableParameters() => named_parameters().Where(p => p.parameter.requires_grad);

    /// <summary>
    /// Adds expert n (a new domain) to every target: A Kaiming-uniform, B zeros (the output does not change until it
    /// trains) and a new gate row. With <paramref name="freezeExisting"/> (the default) the existing experts and their
    /// gate rows stop training (<c>requires_grad = false</c>), so an optimizer over <see cref="TrainableParameters"/>
    /// (built after this call) trains only the new expert and its row, leaving the others bit-identical.
    /// </summary>
    /// <returns>The new expert's index.</returns>
    /// <exception cref="InvalidOperationException">The mixture has <see cref="LoraMixtureOptions.MaxExperts"/> experts, or was removed.</exception>
    public int AddExpert(bool freezeExisting = true)
    {
        if (!_attached) throw new InvalidOperationException($"Mixture '{Name}' was removed from its model.");
        if (NumExperts >= LoraMixtureOptions.MaxExperts)
            throw new InvalidOperationException($"Mixture '{Name}' has {NumExperts} experts; allowed: at most {LoraMixtureOptions.MaxExperts}.");
        if (freezeExisting)
        {
            for (int i = 0; i < NumExperts; i++) SetExpertTrainable(i, false);
        }

        foreach (var layer in _layers) layer.AddExpert();
        _options.NumExperts++;
        return NumExperts - 1;
    }

    /// <summary>Lets expert <paramref name="expert"/> (its A, B and gate rows in every target) train or not.</summary>
    /// <exception cref="ArgumentOutOfRangeException">No such expert.</exception>
    public void SetExpertTrainable(int expert, bool trainable)
    {
        if (expert < 0 || expert >= NumExperts) throw new ArgumentOutOfRangeException(nameof(expert), expert, $"expert = {expert} is invalid; allowed: [0, {NumExperts - 1}].");
        foreach (var layer in _layers) layer.SetTrainable(expert, trainable);
    }

    /// <summary>Writes <c>adapter_model.safetensors</c> and <c>adapter_config.json</c> (<c>peft_type</c> <c>LORA_MIXTURE</c>) into <paramref name="directory"/>, each file atomically.</summary>
    public void Save(string directory) => LoraMixtureFiles.Save(this, directory);

    /// <summary>Attaches a mixture saved by <see cref="Save"/> to <paramref name="model"/>, inactive, every expert trainable.</summary>
    /// <exception cref="InvalidDataException">A file is missing or malformed, or a tensor is missing, unexpected or mis-shaped (the message names it).</exception>
    public static LoraMixture Load(nn.Module model, string directory, string name = "mixture") => LoraMixtureFiles.Load(model, directory, name);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) Remove();
        base.Dispose(disposing);
    }
}
