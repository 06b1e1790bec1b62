namespace YingHub.Moe.Rl.BestOfN;

/// <summary>The best of n responses to one prompt.</summary>
/// <param name="BestText">The decoded best response.</param>
/// <param name="BestTokens">The best response's token ids.</param>
/// <param name="BestIndex">Which of the n samples was best (0-based; the first on ties).</param>
/// <param name="BestReward">Its reward total.</param>
/// <param name="Rewards">Every sample's reward total, in sampling order (n values).</param>
public sealed record BestOfNPrompt(string BestText, IReadOnlyList<long> BestTokens, int BestIndex, double BestReward, IReadOnlyList<double> Rewards);

/// <summary>The outcome of <see cref="BestOfNSampler.Sample"/>.</summary>
/// <param name="N">Samples per prompt.</param>
/// <param name="Prompts">One entry per prompt, in order.</param>
/// <param name="MeanBestReward">The mean over prompts of the best reward: best-of-n's score.</param>
/// <param name="BestRewardStandardError">
/// The standard error of <paramref name="MeanBestReward"/> over prompts (sample standard deviation / √prompts); NaN
/// with a single prompt.
/// </param>
/// <param name="MeanReward">The mean of every sampled reward: the base policy's score, to compare against.</param>
public sealed record BestOfNResult(int N, IReadOnlyList<BestOfNPrompt> Prompts, double MeanBestReward, double BestRewardStandardError, double MeanReward)
{
    /// <summary>The analytical KL divergence of this best-of-n policy from the base policy (<see cref="BestOfNSampler.KlDivergence"/>).</summary>
    public double KlDivergence => BestOfNSampler.KlDivergence(N);
}
