namespace YingHub.Moe.Rewards;

/// <summary>A reward for generated text: a total and its named components, for evaluation and reinforcement learning.</summary>
public interface IRewardFunction
{
    /// <summary>Scores one text.</summary>
    /// <param name="text">Any text; lines are separated by line breaks.</param>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    RewardResult Score(string text);

    /// <summary>Scores a batch of texts (one result per text, in order). The default scores them one by one.</summary>
    /// <param name="texts">The texts; none may be null.</param>
    /// <exception cref="ArgumentNullException"><paramref name="texts"/> or one of its texts is null.</exception>
    IReadOnlyList<RewardResult> ScoreBatch(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var results = new RewardResult[texts.Count];
        for (int i = 0; i < results.Length; i++) results[i] = Score(texts[i]);
        return results;
    }
}
