using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Rl.Algorithms;
using YingHub.Moe.Rl.Curriculum;
using YingHub.Moe.Rl.Diagnostics;
using YingHub.Moe.Training.Optimization;

namespace YingHub.Moe.Rl;

/// <summary>Which policy-gradient algorithm <see cref="RlhfTrainer"/> runs.</summary>
public enum RlAlgorithm
{
    /// <summary>PPO with a value head, GAE and the KL penalty in the reward (Ziegler et al. 2019; Ouyang et al. 2022).</summary>
    Ppo,

    /// <summary>GRPO: no critic, group-normalised rewards over <see cref="RlhfOptions.GroupSize"/> responses per prompt, the KL to the reference in the loss (Shao et al. 2024).</summary>
    Grpo,
}

/// <summary>
/// Settings of <see cref="RlhfTrainer"/>. Defaults follow TRL's PPO and GRPO and Huang et al., "The N Implementation
/// Details of RLHF with PPO", scaled to small models; each setting names its source where it has one.
/// </summary>
public sealed class RlhfOptions : IValidatableOptions
{
    /// <summary>PPO (default) or GRPO.</summary>
    public RlAlgorithm Algorithm { get; set; } = RlAlgorithm.Ppo;

    /// <summary>Rollout-and-update iterations; [1, 10,000,000].</summary>
    public long Iterations { get; set; } = 100;

    /// <summary>Prompts per iteration; [1, 65,536]. A rollout holds <see cref="PromptsPerIteration"/> × <see cref="GroupSize"/> sequences.</summary>
    public int PromptsPerIteration { get; set; } = 16;

    /// <summary>Responses per prompt G: 1 for PPO (or more), at least 2 for GRPO; [1, 1,024].</summary>
    public int GroupSize { get; set; } = 1;

    /// <summary>New tokens per response (the longest; a stop sequence may end one earlier), when no curriculum is given; [1, 1,000,000].</summary>
    public int ResponseTokens { get; set; } = 48;

    /// <summary>Sampling temperature of the rollouts, also applied to every log-probability (so the ratio compares the sampling distributions); (0, 100].</summary>
    public double Temperature { get; set; } = 1.0;

    /// <summary>Passes over each rollout; [1, 100] (TRL: 4).</summary>
    public int Epochs { get; set; } = 4;

    /// <summary>Sequences per minibatch (one optimizer step each); [1, 65,536], at most the sequences of a rollout.</summary>
    public int MiniBatchSize { get; set; } = 8;

    /// <summary>Learning rate of the policy; finite, &gt; 0.</summary>
    public double LearningRate { get; set; } = 1e-5;

    /// <summary>Learning rate of the value head (PPO); finite, &gt; 0; null: the policy's.</summary>
    public double? ValueLearningRate { get; set; } = 1e-4;

    /// <summary>AdamW's decoupled weight decay; finite, &gt;= 0 (TRL: 0).</summary>
    public double WeightDecay { get; set; }

    /// <summary>Maximum global gradient norm; (0, 1e6] or null (TRL: 1.0).</summary>
    public double? GradientClip { get; set; } = 1.0;

    /// <summary>Per-module clipping (router, experts, other) before the global clip; null: none.</summary>
    public GradientClipOptions? ModuleGradientClip { get; set; }

    /// <summary>The PPO ratio's clip range ε; (0, 1) (0.2).</summary>
    public double ClipRange { get; set; } = 0.2;

    /// <summary>The value loss's clip range; &gt; 0 (0.2).</summary>
    public double ValueClipRange { get; set; } = 0.2;

    /// <summary>Weight of the value loss; finite, &gt;= 0 (TRL: 0.1).</summary>
    public double ValueLossCoef { get; set; } = 0.1;

    /// <summary>Weight of the entropy bonus (subtracted from the loss); finite, &gt;= 0.</summary>
    public double EntropyCoef { get; set; }

    /// <summary>Include the policy's MoE auxiliary losses (with the model's own coefficients) over the response tokens.</summary>
    public bool AuxiliaryLosses { get; set; } = true;

    /// <summary>GAE's discount γ; [0, 1] (1).</summary>
    public double Gamma { get; set; } = 1.0;

    /// <summary>GAE's λ; [0, 1] (0.95).</summary>
    public double Lambda { get; set; } = 0.95;

    /// <summary>Whiten the advantages over each minibatch's rollout (PPO); TRL does.</summary>
    public bool WhitenAdvantages { get; set; } = true;

    /// <summary>The KL estimator, everywhere: the reward's penalty (PPO), the loss (GRPO), the controller and the logs. Null: k1 for PPO, k3 for GRPO.</summary>
    public KlEstimator? KlEstimator { get; set; }

    /// <summary>The initial KL coefficient β; finite, &gt;= 0 (PPO: in the reward; GRPO: in the loss). TRL: 0.05 (PPO), 0.04 (GRPO).</summary>
    public double KlCoef { get; set; } = 0.05;

    /// <summary>
    /// A target mean KL per sequence for Ziegler's adaptive β (<see cref="KlController"/>); null keeps β fixed. &gt; 0.
    /// </summary>
    public double? KlTarget { get; set; }

    /// <summary>Sequences over which the adaptive controller makes a full correction; &gt;= 1 (Ziegler et al.: 10,000).</summary>
    public double KlHorizon { get; set; } = 10_000;

    /// <summary>Stop an epoch's remaining minibatches once the update's approximate KL exceeds this; &gt; 0, or null for never.</summary>
    public double? TargetApproxKl { get; set; }

    /// <summary>
    /// Rollout routing replay: the update's forwards reuse the experts each token took in the rollout's forward, so the
    /// ratio compares the same expert paths (the gate weights still come from the current router). Default true.
    /// </summary>
    public bool RoutingReplay { get; set; } = true;

    /// <summary>
    /// The response length per iteration (a curriculum), capped at <see cref="ResponseTokens"/>:
    /// <c>constant:N</c>, <c>linear:START:STEP[:EVERY]</c> or <c>yinghub-v2</c> (<see cref="ResponseLengthSchedules.Parse"/>);
    /// null: <see cref="ResponseTokens"/> throughout. A schedule given in code (<see cref="RlhfTrainer.ResponseLength"/>) replaces it.
    /// </summary>
    public string? Curriculum { get; set; }

    /// <summary>
    /// Collapse guards checked on every rollout's decoded responses (counted over words): a warning when a threshold is
    /// crossed, and a stop (after a save) when <see cref="CollapseGuardOptions.StopOnCollapse"/> is set. The default
    /// only warns.
    /// </summary>
    public CollapseGuardOptions CollapseGuard { get; set; } = new() { StopOnCollapse = false };

    /// <summary>Seed of the prompt order, the rollouts' sampling and the minibatch shuffles.</summary>
    public long Seed { get; set; } = 1337;

    /// <summary>Freeze patterns (<c>ParameterFreezing</c>: embeddings, blocks:N, attention, routers, experts, lm_head, or parameter-name globs).</summary>
    public List<string> Freeze { get; set; } = [];

    /// <summary>Where checkpoints go (policy weights loadable by every command, value head, optimizer, controller, RNG); null: none.</summary>
    public string? CheckpointDirectory { get; set; }

    /// <summary>Arithmetic of the update's forward and backward passes (fp32 master weights in every case).</summary>
    public YingHub.Moe.Training.TrainingPrecision Precision { get; set; } = YingHub.Moe.Training.TrainingPrecision.Fp32;

    /// <summary>The value loss trains the shared trunk too (TRL); false trains the value head alone on detached hidden states.</summary>
    public bool ValueLossTrainsPolicy { get; set; } = true;

    /// <summary>
    /// PPO's values come from a separate critic: a copy of the starting policy with the value head, trained by the value
    /// loss alone (at <see cref="ValueLearningRate"/>), so the value loss never moves the policy; it costs a second model's
    /// memory and optimizer state and a critic forward per rollout and minibatch. One optimizer holds both, so
    /// <see cref="GradientClip"/>'s global norm spans policy and critic together (as TRL's wrapper of the two does).
    /// False (default): the head on the policy.
    /// </summary>
    public bool SeparateCritic { get; set; }

    /// <summary>Save a checkpoint every this many iterations (and at the end); 0: only at the end. [0, 10,000,000].</summary>
    public long SaveEvery { get; set; }

    /// <summary>Held-out prompts scored before and after training (mean reward, same seed); 0 for none. [0, 65,536].</summary>
    public int EvaluationPrompts { get; set; } = 64;

    /// <summary>Every problem, naming the field, its value and the allowed range.</summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Enum.IsDefined(Algorithm), nameof(Algorithm), Algorithm, string.Join(", ", Enum.GetNames<RlAlgorithm>()));
        errors.Require(Iterations is >= 1 and <= 10_000_000, nameof(Iterations), Iterations, "[1, 10000000]");
        errors.Require(PromptsPerIteration is >= 1 and <= 65_536, nameof(PromptsPerIteration), PromptsPerIteration, "[1, 65536]");
        errors.Require(GroupSize is >= 1 and <= 1024, nameof(GroupSize), GroupSize, "[1, 1024]");
        errors.Require(Algorithm != RlAlgorithm.Grpo || GroupSize >= 2, nameof(GroupSize), GroupSize, ">= 2 for GRPO (advantages compare responses to the same prompt)");
        errors.Require(ResponseTokens is >= 1 and <= 1_000_000, nameof(ResponseTokens), ResponseTokens, "[1, 1000000]");
        errors.Require(double.IsFinite(Temperature) && Temperature > 0 && Temperature <= 100, nameof(Temperature), Temperature, "(0, 100]");
        errors.Require(Epochs is >= 1 and <= 100, nameof(Epochs), Epochs, "[1, 100]");
        errors.Require(MiniBatchSize is >= 1 and <= 65_536, nameof(MiniBatchSize), MiniBatchSize, "[1, 65536]");
        errors.Require(MiniBatchSize <= (long)PromptsPerIteration * GroupSize, nameof(MiniBatchSize), MiniBatchSize,
            $"at most the sequences of a rollout, PromptsPerIteration × GroupSize = {(long)PromptsPerIteration * GroupSize}");
        errors.Require(double.IsFinite(LearningRate) && LearningRate > 0, nameof(LearningRate), LearningRate, "finite and > 0");
        errors.Require(ValueLearningRate is not { } v || (double.IsFinite(v) && v > 0), nameof(ValueLearningRate), ValueLearningRate, "finite and > 0, or null");
        errors.Require(double.IsFinite(WeightDecay) && WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "finite and >= 0");
        errors.Require(GradientClip is not { } c || (c > 0 && c <= 1e6), nameof(GradientClip), GradientClip, "(0, 1000000] or null");
        errors.AddNested(nameof(ModuleGradientClip), ModuleGradientClip);
        errors.Require(ClipRange is > 0 and < 1, nameof(ClipRange), ClipRange, "(0, 1)");
        errors.Require(ValueClipRange > 0, nameof(ValueClipRange), ValueClipRange, "> 0");
        errors.Require(double.IsFinite(ValueLossCoef) && ValueLossCoef >= 0, nameof(ValueLossCoef), ValueLossCoef, "finite and >= 0");
        errors.Require(double.IsFinite(EntropyCoef) && EntropyCoef >= 0, nameof(EntropyCoef), EntropyCoef, "finite and >= 0");
        errors.Require(Gamma is >= 0 and <= 1, nameof(Gamma), Gamma, "[0, 1]");
        errors.Require(Lambda is >= 0 and <= 1, nameof(Lambda), Lambda, "[0, 1]");
        errors.Require(KlEstimator is null || Enum.IsDefined(KlEstimator.Value), nameof(KlEstimator), KlEstimator, "K1, K3 or null");
        errors.Require(double.IsFinite(KlCoef) && KlCoef >= 0, nameof(KlCoef), KlCoef, "finite and >= 0");
        errors.Require(KlTarget is not { } t || (double.IsFinite(t) && t > 0), nameof(KlTarget), KlTarget, "finite and > 0, or null (fixed β)");
        errors.Require(KlHorizon >= 1 && double.IsFinite(KlHorizon), nameof(KlHorizon), KlHorizon, ">= 1");
        errors.Require(TargetApproxKl is not { } a || (double.IsFinite(a) && a > 0), nameof(TargetApproxKl), TargetApproxKl, "finite and > 0, or null");
        errors.Require(Freeze is not null && Freeze.All(p => !string.IsNullOrWhiteSpace(p)), nameof(Freeze), Freeze is null ? null : string.Join(",", Freeze), "a list of non-empty patterns");
        if (Curriculum is not null)
        {
            try
            {
                ResponseLengthSchedules.Parse(Curriculum, ResponseTokens);
            }
            catch (ArgumentException ex)
            {
                errors.Require(false, nameof(Curriculum), Curriculum, $"{string.Join(", ", ResponseLengthSchedules.KnownFormats)} ({ex.Message})");
            }
        }

        errors.Require(CollapseGuard is not null, nameof(CollapseGuard), null, "collapse guard settings");
        errors.AddNested(nameof(CollapseGuard), CollapseGuard);
        errors.Require(!SeparateCritic || Algorithm == RlAlgorithm.Ppo, nameof(SeparateCritic), SeparateCritic, "false for GRPO, which has no critic");
        errors.Require(SaveEvery is >= 0 and <= 10_000_000, nameof(SaveEvery), SaveEvery, "[0, 10000000]");
        errors.Require(CheckpointDirectory is null || !string.IsNullOrWhiteSpace(CheckpointDirectory), nameof(CheckpointDirectory), CheckpointDirectory, "null or a non-empty path");
        errors.Require(Enum.IsDefined(Precision), nameof(Precision), Precision, string.Join(", ", Enum.GetNames<YingHub.Moe.Training.TrainingPrecision>()));
        errors.Require(EvaluationPrompts is >= 0 and <= 65_536, nameof(EvaluationPrompts), EvaluationPrompts, "[0, 65536]");
        return errors;
    }

    /// <summary>The estimator in use: <see cref="KlEstimator"/>, or k1 for PPO and k3 for GRPO.</summary>
    public KlEstimator EffectiveKlEstimator => KlEstimator ?? (Algorithm == RlAlgorithm.Grpo ? Algorithms.KlEstimator.K3 : Algorithms.KlEstimator.K1);

    /// <summary>Sequences per rollout: prompts × group size.</summary>
    public int RolloutSequences => PromptsPerIteration * GroupSize;
}
