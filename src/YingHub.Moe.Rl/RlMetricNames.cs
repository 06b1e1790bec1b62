namespace YingHub.Moe.Rl;

/// <summary>Names of the metrics <see cref="RlhfTrainer"/> logs per iteration (TRL's names where TRL has one).</summary>
public static class RlMetricNames
{
    /// <summary>Mean task reward of the rollout.</summary>
    public const string RewardMean = "env/reward_mean";

    /// <summary>Standard deviation of the task reward.</summary>
    public const string RewardStd = "env/reward_std";

    /// <summary>Prefix of each reward component's mean: <c>env/reward/{component}</c>.</summary>
    public const string RewardComponentPrefix = "env/reward/";

    /// <summary>Mean per-sequence KL to the reference (the configured estimator, summed over response tokens).</summary>
    public const string Kl = "objective/kl";

    /// <summary>The KL coefficient β after the iteration's controller update.</summary>
    public const string Beta = "objective/kl_coef";

    /// <summary>Mean per-sequence KL penalty −β·KL in the reward (PPO).</summary>
    public const string KlPenalty = "objective/kl_penalty";

    /// <summary>GRPO's KL term in the loss, β × the masked mean per-token KL (mean over minibatches).</summary>
    public const string KlLoss = "loss/kl";

    /// <summary>Mean per-token entropy of the policy over response tokens (at the update).</summary>
    public const string Entropy = "objective/entropy";

    /// <summary>Clipped surrogate loss (mean over minibatches).</summary>
    public const string PolicyLoss = "loss/policy";

    /// <summary>Clipped value loss (PPO).</summary>
    public const string ValueLoss = "loss/value";

    /// <summary>Weighted MoE auxiliary losses over response tokens.</summary>
    public const string AuxLoss = "loss/aux";

    /// <summary>Share of tokens where the ratio was clipped.</summary>
    public const string ClipFraction = "policy/clipfrac";

    /// <summary>Approximate KL of the update, ½(log ρ)² (mean over minibatches).</summary>
    public const string ApproxKl = "policy/approxkl";

    /// <summary>Share of tokens where the value was clipped.</summary>
    public const string ValueClipFraction = "val/clipfrac";

    /// <summary>1 − Var(returns − values) / Var(returns) over response tokens.</summary>
    public const string ExplainedVariance = "val/var_explained";

    /// <summary>Mean response length in tokens.</summary>
    public const string ResponseLength = "tokens/response_len_mean";

    /// <summary>Share of (response token, MoE layer) pairs whose router, at the update, would pick another expert set than the rollout did.</summary>
    public const string RoutingChange = "moe/routing_change";

    /// <summary>
    /// Share of (response-predicting position, MoE layer) pairs whose update forward used another expert set than the
    /// rollout: 0 with <see cref="RlhfOptions.RoutingReplay"/>, <see cref="RoutingChange"/> without it.
    /// </summary>
    public const string RoutingChangeUsed = "moe/routing_change_used";

    /// <summary>The iteration's response-length limit (the curriculum's value).</summary>
    public const string ResponseLengthLimit = "tokens/response_len_limit";

    /// <summary>Collapse guard: share of the rollout's responses that duplicate another (1 − distinct/total, over words).</summary>
    public const string CollapseIdenticalShare = "collapse/identical_share";

    /// <summary>Collapse guard: distinct word bigrams / word bigrams over the rollout.</summary>
    public const string CollapseDistinct2 = "collapse/distinct_2";

    /// <summary>Collapse guard: distinct word trigrams / word trigrams over the rollout.</summary>
    public const string CollapseDistinct3 = "collapse/distinct_3";

    /// <summary>Collapse guard: share of word trigrams that repeat an earlier one of the same response, averaged over responses.</summary>
    public const string CollapseRepeatedNgramRate = "collapse/repeated_ngram_rate";

    /// <summary>1 when the collapse guard flagged the iteration (a threshold crossed).</summary>
    public const string CollapseFlagged = "collapse/flagged";

    /// <summary>1 when the update stopped early on <see cref="RlhfOptions.TargetApproxKl"/>.</summary>
    public const string EarlyStopped = "policy/early_stopped";

    /// <summary>Seconds of batched generation.</summary>
    public const string TimeGeneration = "time/generation";

    /// <summary>Seconds of decoding and scoring.</summary>
    public const string TimeScoring = "time/scoring";

    /// <summary>Seconds of the rollout's teacher-forced forwards (policy, values, reference).</summary>
    public const string TimeForward = "time/forward";

    /// <summary>Seconds of the PPO/GRPO update.</summary>
    public const string TimeUpdate = "time/update";

    /// <summary>Generated tokens per second of the whole iteration.</summary>
    public const string TokensPerSecond = "tokens_per_s";

    /// <summary>The policy's learning rate.</summary>
    public const string LearningRate = "lr";

    /// <summary>Global gradient norm before clipping (mean over minibatches).</summary>
    public const string GradNorm = "grad_norm/global";
}
