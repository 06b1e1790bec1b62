using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Losses;

/// <summary>
/// Router auxiliary losses, as pure functions of one MoE layer's router outputs. Each returns a scalar fp32 tensor
/// owned by the caller. Each takes an optional token mask (N), true for the tokens that count: padding and positions
/// whose label is the ignore index are left out of every mean and count (Hugging Face's
/// <c>load_balancing_loss_func</c> takes the attention mask for the same reason, transformers #28505). With no token
/// counted, a loss is 0.
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
    /// <param name="mask">Tokens that count (N), bool; null counts all.</param>
    public static Tensor LoadBalancing(Tensor probs, Tensor indices, Tensor? mask = null)
    {
        using var scope = torch.NewDisposeScope();
        long e = probs.size(1), k = indices.size(1);
        var counts = Counts(indices, e, mask);                                       // (E)
        var fp32 = probs.to(ScalarType.Float32);                                     // (N, E)
        Tensor f, p;
        if (mask is null)
        {
            f = counts / (double)indices.numel();                                    // (E)
            p = fp32.mean([0]);                                                      // (E)
        }
        else
        {
            var tokens = Count(mask);                                                // ()
            f = counts / (tokens * k);                                               // (E)
            p = Sum(fp32, mask) / tokens;                                            // (E)
        }

        return ((f * p).sum() * e).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Assignments per expert (E), fp32, counting only the tokens of <paramref name="mask"/> (N) when given:
    /// <c>Σ_n mask_n · Σ_j [indices[n, j] = i]</c>.
    /// </summary>
    /// <param name="indices">Selected experts (N, k), int64.</param>
    /// <param name="experts">E.</param>
    /// <param name="mask">Tokens that count (N), bool; null counts all.</param>
    public static Tensor Counts(Tensor indices, long experts, Tensor? mask = null)
    {
        using var scope = torch.NewDisposeScope();
        var weights = mask?.to(ScalarType.Float32).unsqueeze(1).expand(indices.size(0), indices.size(1)).reshape(-1); // (N*k)
        var counts = indices.reshape(-1).bincount(weights, experts);                                                   // (E)
        return counts.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>Σ over the counted rows of x (N, E) → (E).</summary>
    private static Tensor Sum(Tensor x, Tensor? mask) =>
        mask is null ? x.sum([0]) : x.masked_fill(mask.logical_not().unsqueeze(1), 0).sum([0]); // a fill, not a product: inf · 0 would be NaN

    /// <summary>The number of counted tokens (), at least 1, so an empty mask gives a zero loss rather than NaN.</summary>
    private static Tensor Count(Tensor mask) => mask.to(ScalarType.Float32).sum().clamp_min(1);

    /// <summary>Router z-loss (ST-MoE, OpenMoE): <c>mean_n (logsumexp_i logits[n, i])²</c>.</summary>
    /// <param name="logits">Raw router logits (N, E).</param>
    /// <param name="mask">Tokens that count (N), bool; null counts all.</param>
    public static Tensor ZLoss(Tensor logits, Tensor? mask = null)
    {
        using var scope = torch.NewDisposeScope();
        var z = logits.to(ScalarType.Float32).logsumexp(-1).pow(2); // (N)
        var loss = mask is null ? z.mean() : z.masked_fill(mask.logical_not(), 0).sum() / Count(mask);
        return loss.MoveToOuterDisposeScope();
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
    /// <param name="mask">Tokens of the current batch that count (N), bool; null counts all.</param>
    public static Tensor WindowKlToUniform(Tensor pastCounts, Tensor probs, int topK, Tensor? mask = null)
    {
        using var scope = torch.NewDisposeScope();
        long e = probs.size(1);
        var load = pastCounts.to(ScalarType.Float32) + Sum(probs.to(ScalarType.Float32), mask) * topK; // (E): N·k · mean_n probs
        var total = load.sum();                                                                              // ()
        var q = load / total.clamp_min(1e-12);                                                               // (E)
        // KL(u ‖ q) = Σ u_i (log u_i − log q_i) with u_i = 1/E; no load at all (an empty window, nothing counted) is 0
        var kl = -Math.Log(e) - q.clamp_min(1e-12).log().mean();
        return torch.where(total > 0, kl, torch.zeros_like(kl)).MoveToOuterDisposeScope();
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
