using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Algorithms;

/// <summary>How the per-token KL between the policy and the reference is estimated from sampled tokens (Schulman, "Approximating KL Divergence").</summary>
public enum KlEstimator
{
    /// <summary><c>k1 = log π − log π_ref</c>: unbiased, high variance, negative on some tokens.</summary>
    K1,

    /// <summary><c>k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1</c>: unbiased, never negative, lower variance (GRPO's).</summary>
    K3,
}

/// <summary>Per-token KL estimates (pure functions).</summary>
public static class Kl
{
    /// <summary>The per-token estimate (B, T), fp32, 0 outside <paramref name="mask"/>, differentiable in <paramref name="logProbs"/>.</summary>
    /// <param name="logProbs">Log-probs of the sampled tokens under the policy (B, T).</param>
    /// <param name="referenceLogProbs">The same under the reference (B, T).</param>
    /// <param name="mask">Response tokens (B, T), bool.</param>
    /// <param name="estimator">k1 or k3.</param>
    public static Tensor PerToken(Tensor logProbs, Tensor referenceLogProbs, Tensor mask, KlEstimator estimator)
    {
        ArgumentNullException.ThrowIfNull(logProbs);
        ArgumentNullException.ThrowIfNull(referenceLogProbs);
        ArgumentNullException.ThrowIfNull(mask);
        if (!logProbs.shape.SequenceEqual(referenceLogProbs.shape) || !logProbs.shape.SequenceEqual(mask.shape))
            throw new ArgumentException($"logProbs, referenceLogProbs and mask must share one shape; got [{string.Join(", ", logProbs.shape)}], [{string.Join(", ", referenceLogProbs.shape)}], [{string.Join(", ", mask.shape)}].", nameof(mask));
        using var scope = torch.NewDisposeScope();
        var padding = mask.to(ScalarType.Bool).logical_not();
        var diff = (referenceLogProbs.to(ScalarType.Float32) - logProbs.to(ScalarType.Float32)).masked_fill(padding, 0); // (B, T): log π_ref − log π; padding filled first (see PpoLosses.Policy)
        var kl = estimator switch
        {
            KlEstimator.K1 => -diff,
            KlEstimator.K3 => diff.exp() - diff - 1,
            _ => throw new ArgumentException($"estimator = {estimator} is not a KlEstimator.", nameof(estimator)),
        };
        return kl.masked_fill(padding, 0).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The KL coefficient β of the reward's penalty <c>−β · KL</c>. Adaptive (Ziegler et al. 2019) when a target is set:
/// after each batch, <c>β ← β · (1 + clip(KL / target − 1, −0.2, 0.2) · n / horizon)</c>, n the batch's sequences;
/// fixed otherwise. Its state is <see cref="Beta"/> alone, so a resume restores it from one number.
/// </summary>
public sealed class KlController
{
    private const double MaxProportionalError = 0.2;

    /// <summary>A controller starting at <paramref name="beta"/>; with <paramref name="target"/> it adapts over <paramref name="horizon"/> sequences.</summary>
    /// <exception cref="ArgumentException">β not ≥ 0 and finite, a target not &gt; 0, or a horizon below 1.</exception>
    public KlController(double beta, double? target = null, double horizon = 10_000)
    {
        if (!(beta >= 0 && double.IsFinite(beta))) throw new ArgumentException($"beta = {beta} is invalid; allowed: >= 0 and finite.", nameof(beta));
        if (target is { } t && !(t > 0 && double.IsFinite(t))) throw new ArgumentException($"target = {t} is invalid; allowed: > 0 and finite, or null (fixed).", nameof(target));
        if (!(horizon >= 1)) throw new ArgumentException($"horizon = {horizon} is invalid; allowed: >= 1.", nameof(horizon));
        Beta = beta;
        Target = target;
        Horizon = horizon;
    }

    /// <summary>The current coefficient β.</summary>
    public double Beta { get; private set; }

    /// <summary>The KL target, or null for a fixed β.</summary>
    public double? Target { get; }

    /// <summary>Sequences over which a full proportional correction takes effect.</summary>
    public double Horizon { get; }

    /// <summary>Updates β from the batch's mean per-sequence KL (a negative estimate, possible with k1, pulls β down like any KL below target) and returns it.</summary>
    /// <param name="meanKl">The batch's mean KL per sequence, finite.</param>
    /// <param name="sequences">Sequences in the batch, ≥ 1.</param>
    public double Update(double meanKl, int sequences)
    {
        if (!double.IsFinite(meanKl)) throw new ArgumentException($"meanKl = {meanKl} is invalid; allowed: finite.", nameof(meanKl));
        if (sequences < 1) throw new ArgumentException($"sequences = {sequences} is invalid; allowed: >= 1.", nameof(sequences));
        if (Target is not { } target) return Beta;
        double error = Math.Clamp(meanKl / target - 1, -MaxProportionalError, MaxProportionalError);
        Beta *= 1 + error * sequences / Horizon;
        return Beta;
    }

    /// <summary>Restores β (from a checkpoint).</summary>
    public void Restore(double beta)
    {
        if (!(beta >= 0 && double.IsFinite(beta))) throw new ArgumentException($"beta = {beta} is invalid; allowed: >= 0 and finite.", nameof(beta));
        Beta = beta;
    }
}
