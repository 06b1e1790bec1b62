using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Algorithms;

/// <summary>The clipped policy loss and what PPO logs with it. Tensors are scalars owned by the caller.</summary>
/// <param name="Loss">Masked mean of <c>max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε))</c> (), differentiable in the new log-probs.</param>
/// <param name="ClipFraction">Share of counted tokens where the clipped term was the larger one (), no gradient.</param>
/// <param name="ApproxKl">Masked mean of <c>½ (log π_new − log π_old)²</c> (), no gradient: how far the update moved.</param>
public sealed record PolicyLoss(Tensor Loss, Tensor ClipFraction, Tensor ApproxKl) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Loss.Dispose();
        ClipFraction.Dispose();
        ApproxKl.Dispose();
    }
}

/// <summary>The clipped value loss and its clip fraction. Tensors are scalars owned by the caller.</summary>
/// <param name="Loss">½ · masked mean of <c>max((V − R)², (V_clip − R)²)</c> (), differentiable in the new values.</param>
/// <param name="ClipFraction">Share of counted tokens where the clipped error was the larger one ().</param>
public sealed record ValueLoss(Tensor Loss, Tensor ClipFraction) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Loss.Dispose();
        ClipFraction.Dispose();
    }
}

/// <summary>
/// PPO's losses over response tokens (Schulman et al. 2017; the details of Huang et al., "The N Implementation Details
/// of RLHF with PPO"), as pure functions of (B, T) tensors and a (B, T) mask of response tokens: every mean is over the
/// counted tokens of the whole batch.
/// </summary>
public static class PpoLosses
{
    /// <summary>The clipped surrogate with ratio <c>ρ = exp(log π_new − log π_old)</c>.</summary>
    /// <param name="newLogProbs">Log-probs of the sampled tokens under the policy being updated (B, T).</param>
    /// <param name="oldLogProbs">The same under the policy that sampled them (B, T), no gradient.</param>
    /// <param name="advantages">Advantages (B, T), no gradient.</param>
    /// <param name="mask">Response tokens (B, T), bool; at least one.</param>
    /// <param name="clip">ε, (0, 1).</param>
    public static PolicyLoss Policy(Tensor newLogProbs, Tensor oldLogProbs, Tensor advantages, Tensor mask, double clip = 0.2)
    {
        Check(mask, newLogProbs, oldLogProbs, advantages);
        if (!(clip > 0 && clip < 1)) throw new ArgumentException($"clip = {clip} is invalid; allowed: (0, 1).", nameof(clip));
        using var scope = torch.NewDisposeScope();
        var padding = mask.to(ScalarType.Bool).logical_not();                                               // (B, T)
        // padding is filled before any arithmetic: a non-finite log-prob there would otherwise poison the gradient (0 · NaN)
        var logRatio = (newLogProbs.to(ScalarType.Float32) - oldLogProbs.to(ScalarType.Float32).detach()).masked_fill(padding, 0); // (B, T)
        var ratio = logRatio.exp();                                                                         // (B, T)
        var a = advantages.to(ScalarType.Float32).detach().masked_fill(padding, 0);                         // (B, T)
        var unclipped = -a * ratio;                                                                         // (B, T)
        var clipped = -a * ratio.clamp(1 - clip, 1 + clip);                                                 // (B, T)
        var loss = MaskedMean(torch.maximum(unclipped, clipped), mask);                                     // ()
        using var noGrad = torch.no_grad();
        var clipFraction = MaskedMean(clipped.gt(unclipped).to(ScalarType.Float32), mask);
        var approxKl = MaskedMean(0.5 * logRatio.square(), mask);
        return new PolicyLoss(loss.MoveToOuterDisposeScope(), clipFraction.MoveToOuterDisposeScope(), approxKl.MoveToOuterDisposeScope());
    }

    /// <summary>The clipped value loss: <c>V_clip = V_old + clip(V − V_old, −c, c)</c>.</summary>
    /// <param name="values">Values under the network being updated (B, T).</param>
    /// <param name="oldValues">Values at rollout time (B, T), no gradient.</param>
    /// <param name="returns">Targets (B, T), no gradient.</param>
    /// <param name="mask">Response tokens (B, T), bool; at least one.</param>
    /// <param name="clip">c, &gt; 0 (+infinity: no clipping).</param>
    public static ValueLoss Value(Tensor values, Tensor oldValues, Tensor returns, Tensor mask, double clip = 0.2)
    {
        Check(mask, values, oldValues, returns);
        if (!(clip > 0)) throw new ArgumentException($"clip = {clip} is invalid; allowed: > 0.", nameof(clip));
        using var scope = torch.NewDisposeScope();
        var padding = mask.to(ScalarType.Bool).logical_not();                                     // (B, T)
        var v = values.to(ScalarType.Float32).masked_fill(padding, 0);                            // (B, T): filled first, as in Policy
        var old = oldValues.to(ScalarType.Float32).detach().masked_fill(padding, 0);
        var target = returns.to(ScalarType.Float32).detach().masked_fill(padding, 0);
        var vClipped = old + (v - old).clamp(-clip, clip);                                        // (B, T)
        var error = (v - target).square();                                                        // (B, T)
        var errorClipped = (vClipped - target).square();                                          // (B, T)
        var loss = 0.5 * MaskedMean(torch.maximum(error, errorClipped), mask);                   // ()
        using var noGrad = torch.no_grad();
        var clipFraction = MaskedMean(errorClipped.gt(error).to(ScalarType.Float32), mask);
        return new ValueLoss(loss.MoveToOuterDisposeScope(), clipFraction.MoveToOuterDisposeScope());
    }

    /// <summary>Mean of x (B, T) over the true entries of <paramref name="mask"/> (a fill, not a product: a non-finite value outside the mask stays out).</summary>
    public static Tensor MaskedMean(Tensor x, Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(mask);
        using var scope = torch.NewDisposeScope();
        var counted = mask.to(ScalarType.Bool);
        return (x.masked_fill(counted.logical_not(), 0).sum() / counted.sum().clamp_min(1)).MoveToOuterDisposeScope();
    }

    private static void Check(Tensor mask, params Tensor[] tensors)
    {
        ArgumentNullException.ThrowIfNull(mask);
        foreach (var t in tensors)
        {
            ArgumentNullException.ThrowIfNull(t);
            if (!t.shape.SequenceEqual(mask.shape))
                throw new ArgumentException($"Every input must have the mask's shape [{string.Join(", ", mask.shape)}]; got [{string.Join(", ", t.shape)}].", nameof(mask));
        }
    }
}
