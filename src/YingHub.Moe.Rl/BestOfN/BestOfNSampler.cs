using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Rewards;

using YingHub.Moe.Rl.Rewards;

namespace YingHub.Moe.Rl.BestOfN;

/// <summary>
/// Best-of-n sampling, the baseline an RL run has to beat without training: for each prompt, sample n responses
/// from the model, score them with the reward, keep the best. Its cost in KL to the base policy is known in closed
/// form (<see cref="KlDivergence"/>), so an RL policy can be compared with best-of-n at the same KL.
/// </summary>
public sealed class BestOfNSampler
{
    private readonly MoeForCausalLM _model;
    private readonly ITextTokenizer _tokenizer;
    private readonly IRewardFunction _reward;

    /// <summary>Samples from <paramref name="model"/>, decodes with <paramref name="tokenizer"/>, scores with <paramref name="reward"/>.</summary>
    /// <exception cref="ArgumentException">The tokenizer has more ids than the model's vocabulary.</exception>
    public BestOfNSampler(MoeForCausalLM model, ITextTokenizer tokenizer, IRewardFunction reward)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(reward);
        if (tokenizer.VocabSize > model.Options.VocabSize)
            throw new ArgumentException($"The tokenizer has {tokenizer.VocabSize} ids; the model only {model.Options.VocabSize}.", nameof(tokenizer));
        (_model, _tokenizer, _reward) = (model, tokenizer, reward);
    }

    /// <summary>
    /// The analytical KL divergence of the best-of-n policy from the base policy, <c>log n − (n − 1) / n</c> nats
    /// (Stiennon et al. 2020, "Learning to summarize from human feedback"; derived by J. Hilton). Exact when the
    /// rewards are continuously distributed (no ties, nor repeated responses); otherwise an upper bound (Beirami et al.
    /// 2024). 0 for n = 1; it grows like log n.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="n"/> is below 1.</exception>
    public static double KlDivergence(int n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        return Math.Log(n) - (n - 1.0) / n;
    }

    /// <summary>
    /// Samples <paramref name="n"/> responses per prompt as <paramref name="sampling"/> says (their length is its
    /// <see cref="SamplingOptions.MaxNewTokens"/>), all prompts in one batched KV-cache generation (prompt-major: prompt
    /// 0's n samples first), and keeps each prompt's best; with a <see cref="SamplingOptions.Seed"/> the result is reproducible.
    /// </summary>
    /// <param name="prompts">Token ids of each prompt, at least one, none empty.</param>
    /// <param name="n">Samples per prompt, ≥ 1.</param>
    /// <param name="sampling">How to sample (temperature, top-p, seed, ...); not changed.</param>
    /// <param name="cancellationToken">Cancels between generated tokens.</param>
    /// <exception cref="ArgumentException">Bad prompts, <paramref name="n"/> below 1, or invalid sampling options.</exception>
    /// <exception cref="InvalidOperationException">The reward returned the wrong number of results or a non-finite total.</exception>
    public BestOfNResult Sample(IReadOnlyList<IReadOnlyList<long>> prompts, int n, SamplingOptions sampling, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(sampling);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        if (prompts.Count == 0) throw new ArgumentException("At least one prompt is needed.", nameof(prompts));
        for (int p = 0; p < prompts.Count; p++)
            if (prompts[p] is not { Count: > 0 }) throw new ArgumentException($"Prompt {p} is empty or null.", nameof(prompts));
        var repeated = prompts.SelectMany(p => Enumerable.Repeat(p, n)).ToArray();              // (P·n) prompt-major
        long[][] responses = new TokenGenerator(_model).GenerateBatch(repeated, sampling, cancellationToken);
        string[] texts = RewardScoring.Decode(_tokenizer, responses);
        double[] rewards = _reward.ScoreChecked(texts).Select(r => r.Total).ToArray();

        var results = new BestOfNPrompt[prompts.Count];
        for (int p = 0; p < results.Length; p++)
        {
            var own = new ArraySegment<double>(rewards, p * n, n);
            int best = 0;
            for (int j = 1; j < n; j++) if (own[j] > own[best]) best = j; // strict: the first sample wins ties
            int row = p * n + best;
            results[p] = new BestOfNPrompt(texts[row], responses[row], best, own[best], own.ToArray());
        }

        double[] bests = results.Select(r => r.BestReward).ToArray();
        return new BestOfNResult(n, results, bests.Average(), RewardEvaluation.Of(bests).StandardError, rewards.Average());
    }
}
