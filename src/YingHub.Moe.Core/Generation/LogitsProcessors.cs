using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Generation;

/// <summary>
/// Transformations of next-token logits (B, V), each one tensor op or a few: repetition, presence and frequency
/// penalties, top-k, top-p, min-p. Removed tokens get −∞. Every method returns a new tensor and leaves its input alone.
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

    /// <summary>
    /// Presence and frequency penalties (OpenAI): <c>logit − presence · [count &gt; 0] − frequency · count</c>, counting
    /// each token's occurrences in <paramref name="recent"/> (B, W).
    /// </summary>
    public static Tensor PresenceFrequencyPenalty(Tensor logits, Tensor recent, double presence, double frequency)
    {
        if ((presence == 0 && frequency == 0) || recent.shape[1] == 0) return logits.alias();
        using var scope = torch.NewDisposeScope();
        var counts = torch.zeros_like(logits).scatter_add(1, recent, torch.ones(recent.shape, dtype: logits.dtype, device: logits.device)); // (B, V)
        return (logits - (counts > 0).to(logits.dtype) * presence - counts * frequency).MoveToOuterDisposeScope();
    }

    /// <summary>Min-p filter: keeps tokens whose probability is at least <paramref name="p"/> × the row's largest probability.</summary>
    public static Tensor MinP(Tensor logits, double p)
    {
        using var scope = torch.NewDisposeScope();
        // p_i ≥ p · p_max  ⇔  logit_i ≥ logit_max + log p
        var threshold = logits.max(-1, keepdim: true).values + Math.Log(p); // (B, 1)
        return logits.masked_fill(logits < threshold, double.NegativeInfinity).MoveToOuterDisposeScope();
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
