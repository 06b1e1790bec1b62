using System.Globalization;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// The metric names every <see cref="ITrainingTracker"/> receives. Names are lower case, words joined by <c>_</c>,
/// groups separated by <c>/</c> (TensorBoard and MLflow both group charts on the prefix):
/// <list type="table">
/// <item><term><c>train/loss</c>, <c>val/loss</c></term><description>LM cross-entropy (nats per token) on training and validation batches.</description></item>
/// <item><term><c>lr</c></term><description>The step's base learning rate.</description></item>
/// <item><term><c>grad_norm/global</c>, <c>grad_norm/router</c>, <c>grad_norm/experts</c>, <c>grad_norm/other</c></term><description>L2 norms of the gradients before clipping: all parameters, and the router / expert / remaining parameter groups.</description></item>
/// <item><term><c>aux/load_balancing</c>, <c>aux/z_loss</c></term><description>The router's auxiliary losses, before their coefficients.</description></item>
/// <item><term><c>utilization</c>, <c>top_k</c></term><description>The share of experts whose load over the router's sliding window is at or above the threshold share of a fair load (<c>RouterLosses.Utilization</c>: load ≥ threshold × total / E), averaged over MoE layers; and the current top-k.</description></item>
/// <item><term><c>dropped/{layer}</c>, <c>dropped/mean</c></term><description>The share of a layer's routed assignments (tokens × k) that expert capacity dropped in the step's last micro-batch, and its mean over MoE layers (0 without a capacity limit); build with <see cref="DroppedShare"/>.</description></item>
/// <item><term><c>tokens_per_s</c>, <c>ms_per_step</c>, <c>mfu</c></term><description>Throughput, step time and model-FLOPs utilization (0..1).</description></item>
/// <item><term><c>expert_load/{layer}/{expert}</c></term><description>The fraction of a layer's routed tokens that went to one expert (a layer's fractions sum to 1); build with <see cref="ExpertLoad"/>, parse with <see cref="TryParseExpertLoad"/>.</description></item>
/// </list>
/// Sinks may receive other names too; they must pass them through unchanged.
/// </summary>
public static class MetricNames
{
    /// <summary>Training LM loss.</summary>
    public const string TrainLoss = "train/loss";

    /// <summary>Validation LM loss.</summary>
    public const string ValidationLoss = "val/loss";

    /// <summary>Learning rate.</summary>
    public const string LearningRate = "lr";

    /// <summary>Global gradient norm (before clipping).</summary>
    public const string GradNormGlobal = "grad_norm/global";

    /// <summary>Gradient norm of the router parameters.</summary>
    public const string GradNormRouter = "grad_norm/router";

    /// <summary>Gradient norm of the expert parameters.</summary>
    public const string GradNormExperts = "grad_norm/experts";

    /// <summary>Gradient norm of the remaining parameters.</summary>
    public const string GradNormOther = "grad_norm/other";

    /// <summary>Load-balancing auxiliary loss.</summary>
    public const string LoadBalancingLoss = "aux/load_balancing";

    /// <summary>Router z-loss.</summary>
    public const string ZLoss = "aux/z_loss";

    /// <summary>Share of experts at or above the utilization threshold over the sliding window (mean over MoE layers).</summary>
    public const string Utilization = "utilization";

    /// <summary>Current number of experts per token.</summary>
    public const string TopK = "top_k";

    /// <summary>Training tokens per second.</summary>
    public const string TokensPerSecond = "tokens_per_s";

    /// <summary>Milliseconds per optimizer step.</summary>
    public const string MillisecondsPerStep = "ms_per_step";

    /// <summary>Model-FLOPs utilization, 0..1.</summary>
    public const string Mfu = "mfu";

    /// <summary>The router's utilization-window KL loss, before its coefficient.</summary>
    public const string UtilizationKlLoss = "aux/utilization_kl";

    /// <summary>The prefix of the gradient norms, <c>grad_norm/</c> (followed by <c>global</c>, a clip group's name, or <c>global_after_group_clip</c>).</summary>
    public const string GradNormPrefix = "grad_norm/";

    /// <summary>The global clip norm of the step, when it follows a schedule.</summary>
    public const string GradClip = "grad_clip";

    /// <summary>The fp16 loss scale.</summary>
    public const string LossScale = "loss_scale";

    /// <summary>The input-token masking probability of the step.</summary>
    public const string MaskProbability = "mask_probability";

    /// <summary>Mean LM loss on training batches at an evaluation (in evaluation mode, as <c>val/loss</c>).</summary>
    public const string EvalTrainLoss = "eval/train_loss";

    /// <summary>The prefix of the capacity-drop shares, <c>dropped/</c> (followed by a layer index or <c>mean</c>).</summary>
    public const string DroppedPrefix = "dropped/";

    /// <summary>The mean over MoE layers of the share of assignments dropped by capacity.</summary>
    public const string DroppedMean = "dropped/mean";

    /// <summary>The name of layer <paramref name="layer"/>'s share of assignments dropped by capacity: <c>dropped/{layer}</c>.</summary>
    /// <param name="layer">The layer index, &gt;= 0.</param>
    /// <exception cref="ArgumentException">A negative index.</exception>
    public static string DroppedShare(int layer)
    {
        if (layer < 0) throw new ArgumentException($"layer = {layer} is invalid; allowed: >= 0.", nameof(layer));
        return string.Create(CultureInfo.InvariantCulture, $"{DroppedPrefix}{layer}");
    }

    /// <summary>The prefix of per-expert load fractions, <c>expert_load/</c>.</summary>
    public const string ExpertLoadPrefix = "expert_load/";

    /// <summary>The name of expert <paramref name="expert"/>'s load fraction in layer <paramref name="layer"/>: <c>expert_load/{layer}/{expert}</c>.</summary>
    /// <param name="layer">The layer index, &gt;= 0.</param>
    /// <param name="expert">The expert index within the layer, &gt;= 0.</param>
    /// <exception cref="ArgumentException">A negative index.</exception>
    public static string ExpertLoad(int layer, int expert)
    {
        if (layer < 0) throw new ArgumentException($"layer = {layer} is invalid; allowed: >= 0.", nameof(layer));
        if (expert < 0) throw new ArgumentException($"expert = {expert} is invalid; allowed: >= 0.", nameof(expert));
        return string.Create(CultureInfo.InvariantCulture, $"{ExpertLoadPrefix}{layer}/{expert}");
    }

    /// <summary>Parses a name built by <see cref="ExpertLoad"/> back to its layer and expert.</summary>
    /// <param name="name">A metric name.</param>
    /// <param name="layer">The layer index, when the name is an expert-load name.</param>
    /// <param name="expert">The expert index, when the name is an expert-load name.</param>
    /// <returns>Whether <paramref name="name"/> is <c>expert_load/{layer}/{expert}</c> with two non-negative decimal integers.</returns>
    public static bool TryParseExpertLoad(string? name, out int layer, out int expert)
    {
        layer = expert = -1;
        if (name is null || !name.StartsWith(ExpertLoadPrefix, StringComparison.Ordinal)) return false;
        ReadOnlySpan<char> rest = name.AsSpan(ExpertLoadPrefix.Length);
        int slash = rest.IndexOf('/');
        if (slash <= 0) return false;
        const NumberStyles digits = NumberStyles.None;
        if (!int.TryParse(rest[..slash], digits, CultureInfo.InvariantCulture, out int l)
            || !int.TryParse(rest[(slash + 1)..], digits, CultureInfo.InvariantCulture, out int e))
            return false;
        (layer, expert) = (l, e);
        return true;
    }

    /// <summary>Whether <paramref name="name"/> starts with <see cref="ExpertLoadPrefix"/>.</summary>
    /// <param name="name">A metric name.</param>
    public static bool IsExpertLoad(string name) => name is not null && name.StartsWith(ExpertLoadPrefix, StringComparison.Ordinal);
}
