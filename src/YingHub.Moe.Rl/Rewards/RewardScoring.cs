using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Rewards;

namespace YingHub.Moe.Rl.Rewards;

/// <summary>
/// Scoring sampled responses, as every RL part does it (rollouts, held-out evaluation, best-of-n): decode the token ids,
/// score the texts in one batch, and refuse a reward that returns the wrong number of results or a non-finite total
/// (a NaN would poison every mean and advantage downstream).
/// </summary>
public static class RewardScoring
{
    /// <summary>The texts of <paramref name="responses"/> (token ids) under <paramref name="tokenizer"/>.</summary>
    public static string[] Decode(ITextTokenizer tokenizer, IReadOnlyList<long[]> responses)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(responses);
        return responses.Select(r => tokenizer.Decode(r.Select(id => (int)id).ToArray())).ToArray();
    }

    /// <summary><paramref name="reward"/>'s results for <paramref name="texts"/> (one batch call), checked.</summary>
    /// <exception cref="InvalidOperationException">The reward returned another number of results, or a total that is NaN or infinite (the message quotes the response).</exception>
    public static IReadOnlyList<RewardResult> ScoreChecked(this IRewardFunction reward, IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(reward);
        ArgumentNullException.ThrowIfNull(texts);
        var results = reward.ScoreBatch(texts);
        if (results.Count != texts.Count) throw new InvalidOperationException($"The reward returned {results.Count} results for {texts.Count} texts.");
        for (int i = 0; i < results.Count; i++)
            if (!double.IsFinite(results[i].Total))
                throw new InvalidOperationException($"The reward of response {i} is {results[i].Total}: rewards must be finite. Response: \"{texts[i]}\"");
        return results;
    }
}
