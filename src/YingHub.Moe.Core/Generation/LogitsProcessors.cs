using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Generation;

/// <summary>
/// Transformations of next-token logits (B, V), each one tensor op or a few: repetition penalty, temperature, top-k,
/// top-p. Removed tokens get −∞. Every method returns a new tensor and leaves its input alone.
/// </summary>
public static class LogitsProcessors
{
    /// <summary>
    /// CTRL repetition penalty (Keskar et al. 2019): for each token id present in <paramref name="recent"/> (B, W),
    /// a positive logit is divided by θ and a negative one multiplied by θ, so its probability really drops.
    /// </summary>
    public static Tensor RepetitionPenalty(Tensor logits, Tensor recent, double penalty)
    {
        if (penalty == 1.0 || recent.shape[1] == 0) return logits.alias();
        using var scope = torch.NewDisposeScope();
        var seen = logits.gather(1, recent);                                         // (B, W)
        var penalised = torch.where(seen > 0, seen / penalty, seen * penalty);       // (B, W)
        return logits.scatter(1, recent, penalised).MoveToOuterDisposeScope();       // (B, V)
    }

    /// <summary>Keeps the <paramref name="k"/> largest logits of each row (ties at the k-th value are kept).</summary>
    public static Tensor TopK(Tensor logits, int k)
    {
        if (k >= logits.shape[1]) return logits.alias();
        using var scope = torch.NewDisposeScope();
        var kth = logits.topk(k, dim: -1).values[.., (k - 1)..k];                  // (B, 1)
        return logits.masked_fill(logits < kth, double.NegativeInfinity).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Nucleus filter (Holtzman et al. 2020): keeps, per row, the smallest prefix of tokens sorted by probability whose
    /// mass reaches <paramref name="p"/> (always at least the most likely token).
    /// </summary>
    public static Tensor TopP(Tensor logits, double p)
    {
        if (p >= 1.0) return logits.alias();
        using var scope = torch.NewDisposeScope();
        var (sorted, order) = logits.sort(dim: -1, descending: true);               // (B, V)
        var cumulative = sorted.softmax(-1).cumsum(-1);                              // (B, V)
        // a token is dropped when the mass before it already reaches p
        var drop = (cumulative - sorted.softmax(-1)) >= p;                           // (B, V)
        var filtered = sorted.masked_fill(drop, double.NegativeInfinity);
        return logits.scatter(1, order, filtered).MoveToOuterDisposeScope();
    }
}
