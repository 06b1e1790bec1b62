using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Losses;

/// <summary>
/// Log-probabilities of given tokens under next-token logits, the quantity PPO (old, new and reference policies), DPO
/// and perplexity are built from. Pure functions; differentiable when the logits are.
/// </summary>
public static class TokenLogProbs
{
    /// <summary>
    /// <c>log softmax(logits)[b, t, targets[b, t]]</c> (B, T), fp32, computed as the target's logit minus the
    /// log-sum-exp (no (B, T, V) log-softmax is materialised). Positions where <paramref name="mask"/> is false get 0.
    /// </summary>
    /// <param name="logits">Next-token logits (B, T, V).</param>
    /// <param name="targets">Token ids (B, T), int64, each in [0, V) where counted.</param>
    /// <param name="mask">Positions that count (B, T), bool; null counts all.</param>
    /// <exception cref="ArgumentException">Shapes that do not match, or a counted target outside [0, V).</exception>
    public static Tensor Gather(Tensor logits, Tensor targets, Tensor? mask = null)
    {
        ArgumentNullException.ThrowIfNull(logits);
        ArgumentNullException.ThrowIfNull(targets);
        if (logits.dim() != 3 || targets.dim() != 2 || logits.size(0) != targets.size(0) || logits.size(1) != targets.size(1))
            throw new ArgumentException($"Logits must be (B, T, V) and targets (B, T); got [{string.Join(", ", logits.shape)}] and [{string.Join(", ", targets.shape)}].", nameof(targets));
        if (mask is not null && !mask.shape.SequenceEqual(targets.shape))
            throw new ArgumentException($"The mask's shape [{string.Join(", ", mask.shape)}] differs from the targets' [{string.Join(", ", targets.shape)}].", nameof(mask));
        using var scope = torch.NewDisposeScope();
        long v = logits.size(2);
        var safe = mask is null ? targets : targets.masked_fill(mask.logical_not(), 0);        // (B, T): uncounted targets may be anything
        if (safe.lt(0).any().item<bool>() || safe.ge(v).any().item<bool>())
            throw new ArgumentException($"A counted target id is outside the vocabulary [0, {v}).", nameof(targets));
        var fp32 = logits.to(ScalarType.Float32);                                              // (B, T, V)
        var picked = fp32.gather(2, safe.unsqueeze(2)).squeeze(2);                              // (B, T)
        var logProbs = picked - fp32.logsumexp(2);                                              // (B, T)
        if (mask is not null) logProbs = logProbs.masked_fill(mask.logical_not(), 0);
        return logProbs.MoveToOuterDisposeScope();
    }
}
