using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Losses;

/// <summary>
/// Router auxiliary losses, as pure functions of one MoE layer's router outputs. Each returns a scalar fp32 tensor
/// owned by the caller.
/// </summary>
public static class RouterLosses
{
    /// <summary>
    /// Switch Transformer / GShard load-balancing loss <c>E · Σ_i f_i · P_i</c>: f_i is the fraction of the N·k
    /// assignments routed to expert i (no gradient), P_i the mean router probability of expert i. Equals 1 when both
    /// are uniform (perfect balance) and E when every token goes to one expert with probability 1.
    /// </summary>
    /// <param name="probs">Router probabilities (N, E).</param>
    /// <param name="indices">Selected experts (N, k), int64.</param>
    public static Tensor LoadBalancing(Tensor probs, Tensor indices)
    {
        using var scope = torch.NewDisposeScope();
        long e = probs.shape[1];
        var f = indices.reshape(-1).bincount(null, e).to(ScalarType.Float32) / indices.numel(); // (E)
        var p = probs.to(ScalarType.Float32).mean([0]);                                             // (E)
        return ((f * p).sum() * e).MoveToOuterDisposeScope();
    }

    /// <summary>Router z-loss (ST-MoE, OpenMoE): <c>mean_n (logsumexp_i logits[n, i])²</c>.</summary>
    /// <param name="logits">Raw router logits (N, E).</param>
    public static Tensor ZLoss(Tensor logits)
    {
        using var scope = torch.NewDisposeScope();
        return logits.to(ScalarType.Float32).logsumexp(-1).pow(2).mean().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// YingHub-v2's sliding-window balance term, made differentiable: KL(uniform ‖ q) where q is the expert load
    /// distribution over the window, the current batch entering through its router probabilities:
    /// <c>q ∝ pastCounts + N·k · mean_n probs</c>. Zero when q is uniform. The gradient flows through the current
    /// batch only, whose share of a full window of W batches is about 1/(W + 1): the term pushes hard early in training
    /// and gently once the window is full, so its coefficient acts roughly W times weaker than a per-batch KL's would.
    /// </summary>
    /// <param name="pastCounts">Assignments per expert over the previous batches of the window (E), no gradient.</param>
    /// <param name="probs">Router probabilities of the current batch (N, E).</param>
    /// <param name="topK">k.</param>
    public static Tensor WindowKlToUniform(Tensor pastCounts, Tensor probs, int topK)
    {
        using var scope = torch.NewDisposeScope();
        long n = probs.shape[0], e = probs.shape[1];
        var load = pastCounts.to(ScalarType.Float32) + probs.to(ScalarType.Float32).mean([0]) * (n * topK); // (E)
        var q = load / load.sum();                                                                           // (E)
        // KL(u ‖ q) = Σ u_i (log u_i − log q_i) with u_i = 1/E
        var kl = -Math.Log(e) - q.clamp_min(1e-12).log().mean();
        return kl.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Share of experts whose load is at least <paramref name="threshold"/> × the fair load (total / E): 1 when
    /// balanced, 1/E when one expert takes everything (for threshold &gt; 0).
    /// </summary>
    /// <param name="load">Assignments per expert (E).</param>
    /// <param name="threshold">Fraction of the fair load that counts as utilised, [0, 1].</param>
    public static Tensor Utilization(Tensor load, double threshold)
    {
        using var scope = torch.NewDisposeScope();
        var l = load.to(ScalarType.Float32);
        var fair = l.sum() / l.shape[0];
        return (l >= fair * threshold).to(ScalarType.Float32).mean().MoveToOuterDisposeScope();
    }
}
