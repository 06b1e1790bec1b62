using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// Settings of a <see cref="LoraMixture"/> (Hydra-β, a mixture of LoRA experts): the experts' LoRA settings
/// (<see cref="Lora"/>: rank, alpha, dropout and target modules, the same for every expert), how many experts each
/// target layer has, how many the gate picks per token, the gate's noise and the balance loss's coefficient. Saved
/// under Hugging Face's MoE keys (<c>num_experts</c>, <c>num_experts_per_tok</c>, <c>router_aux_loss_coef</c>).
/// </summary>
public sealed class LoraMixtureOptions : IValidatableOptions
{
    /// <summary>The largest <see cref="NumExperts"/> accepted.</summary>
    public const int MaxExperts = 256;

    /// <summary>Every expert's LoRA settings (each expert is a LoRA update of every target); required.</summary>
    public LoraOptions Lora { get; set; } = new();

    /// <summary>Experts per target layer, n; [1, <see cref="MaxExperts"/>]. <see cref="LoraMixture.AddExpert"/> adds more later.</summary>
    public int NumExperts { get; set; } = 4;

    /// <summary>
    /// Experts the gate picks per token, k; [1, <see cref="NumExperts"/>]. Their weights are the softmax over the k
    /// picked logits (renormalised), so with k = 1 the picked expert's weight is always 1 and the gate learns only from
    /// the balance loss: use k ≥ 2 to train the gate through the language-model loss.
    /// </summary>
    public int TopK { get; set; } = 2;

    /// <summary>
    /// Noisy top-k gating (Shazeer et al. 2017, as the model's noisy router): in training, each gate adds
    /// <c>N(0, 1) · softplus(x W_noiseᵀ)</c> to its logits, W_noise (n, in) learned with the experts.
    /// </summary>
    public bool NoisyGate { get; set; }

    /// <summary>
    /// The coefficient a training loop multiplies <see cref="LoraMixture.BalanceLoss"/> by before adding it to the
    /// language-model loss; finite and ≥ 0 (0 turns balancing off). Hugging Face's <c>router_aux_loss_coef</c>.
    /// </summary>
    public double BalanceLossCoefficient { get; set; } = 0.01;

    /// <summary>A copy (the LoRA settings are copied too).</summary>
    public LoraMixtureOptions Clone() => new()
    {
        Lora = Lora?.Clone()!, NumExperts = NumExperts, TopK = TopK, NoisyGate = NoisyGate, BalanceLossCoefficient = BalanceLossCoefficient,
    };

    /// <summary>Every problem, naming the field, its value and the allowed range (<see cref="Lora"/>'s under <c>Lora.</c>).</summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Lora is not null, nameof(Lora), null, "LoRA settings (not null)");
        errors.AddNested(nameof(Lora), Lora);
        errors.Require(NumExperts is >= 1 and <= MaxExperts, nameof(NumExperts), NumExperts, $"[1, {MaxExperts}]");
        errors.Require(TopK >= 1 && TopK <= Math.Max(1, NumExperts), nameof(TopK), TopK, $"[1, NumExperts = {NumExperts}]");
        errors.Require(double.IsFinite(BalanceLossCoefficient) && BalanceLossCoefficient >= 0, nameof(BalanceLossCoefficient), BalanceLossCoefficient, "finite and >= 0");
        return errors;
    }
}
