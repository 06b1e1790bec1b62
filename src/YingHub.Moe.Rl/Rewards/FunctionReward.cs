using YingHub.Moe.Rewards;

namespace YingHub.Moe.Rl.Rewards;

/// <summary>
/// A reward from a plain function of the text: the total is the function's value, logged as the single component
/// <see cref="Name"/>. Thread-safe when the function is.
/// </summary>
/// <example><c>new FunctionReward("exclamations", t => t.Count(c => c == '!') / 10.0)</c></example>
public sealed class FunctionReward : IRewardFunction
{
    private readonly Func<string, double> _score;

    /// <summary>Wraps <paramref name="score"/> under <paramref name="name"/>.</summary>
    /// <param name="name">The component's name: not empty or blank.</param>
    /// <param name="score">The reward of a text; called once per text.</param>
    /// <exception cref="ArgumentException"><paramref name="name"/> is empty or blank.</exception>
    public FunctionReward(string name, Func<string, double> score)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(score);
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException($"A reward's name must not be blank; got '{name}'.", nameof(name));
        Name = name;
        _score = score;
    }

    /// <summary>The name of the reward and of its one component.</summary>
    public string Name { get; }

    /// <inheritdoc />
    public RewardResult Score(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        double value = _score(text);
        return new RewardResult(value, new Dictionary<string, double>(StringComparer.Ordinal) { [Name] = value });
    }

    /// <inheritdoc />
    public override string ToString() => Name;
}
