namespace YingHub.Moe.Rewards.Scoring;

/// <summary>
/// The coherence component from a perplexity: 1 at or below <c>full</c>, 0 at or above <c>zero</c>, and in between
/// linear in log-perplexity, (ln zero − ln ppl) / (ln zero − ln full). Monotone non-increasing in the perplexity.
/// A NaN perplexity counts as the worst (0).
/// </summary>
internal static class PerplexityMapping
{
    public static double ToCoherence(double perplexity, double full, double zero)
    {
        if (double.IsNaN(perplexity) || perplexity >= zero) return 0;
        if (perplexity <= full) return 1;
        return (Math.Log(zero) - Math.Log(perplexity)) / (Math.Log(zero) - Math.Log(full));
    }
}
