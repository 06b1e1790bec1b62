using System.Globalization;
using YingHub.Moe.Rewards;

namespace YingHub.Moe.Rl.Rewards;

/// <summary>One term of a <see cref="WeightedReward"/>.</summary>
/// <param name="Name">The term's name, used as the prefix of its components: not blank, without <see cref="WeightedReward.Separator"/>.</param>
/// <param name="Weight">The term's weight: finite, any sign (a negative weight makes the term a penalty).</param>
/// <param name="Reward">The reward the term scores with.</param>
public sealed record RewardTerm(string Name, double Weight, IRewardFunction Reward);

/// <summary>
/// A weighted sum of rewards: <c>Total = Σ weight × term total</c>. The components are every term's unweighted total
/// under the term's name, and every component of every term under <c>"&lt;term&gt;/&lt;component&gt;"</c>, so a log
/// shows what moved. A batch calls each term's <see cref="IRewardFunction.ScoreBatch"/> once, so a term's own batching
/// (e.g. <see cref="ShakespeareReward"/>'s parallel scoring) is kept. Thread-safe when the terms are.
/// </summary>
/// <example>
/// <code>
/// var reward = new WeightedReward(
///     new RewardTerm("shakespeare", 1.0, new ShakespeareReward(lexicon)),
///     new RewardTerm("distinct_words", 0.2, TextRewards.DistinctWords()));
/// // Components: "shakespeare", "shakespeare/rhyme", …, "distinct_words", "distinct_words/distinct_words"
/// </code>
/// </example>
public sealed class WeightedReward : IRewardFunction
{
    /// <summary>Joins a term's name and its component's name in <see cref="RewardResult.Components"/>.</summary>
    public const char Separator = '/';

    private readonly RewardTerm[] _terms;

    /// <summary>A sum over <paramref name="terms"/>, in order.</summary>
    /// <exception cref="ArgumentException">
    /// No terms, a null term or reward, a blank name or one containing <see cref="Separator"/>, a repeated name
    /// (ordinal), or a weight that is NaN or infinite; the message names the term.
    /// </exception>
    public WeightedReward(IEnumerable<RewardTerm> terms)
    {
        ArgumentNullException.ThrowIfNull(terms);
        _terms = terms.ToArray();
        if (_terms.Length == 0) throw new ArgumentException("A weighted reward needs at least one term.", nameof(terms));
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < _terms.Length; i++)
        {
            RewardTerm term = _terms[i] ?? throw new ArgumentException($"Term {i} is null.", nameof(terms));
            if (string.IsNullOrWhiteSpace(term.Name) || term.Name.Contains(Separator))
                throw new ArgumentException($"Term {i} is named '{term.Name}'; a term's name must not be blank or contain '{Separator}'.", nameof(terms));
            if (!names.Add(term.Name)) throw new ArgumentException($"Term {i} repeats the name '{term.Name}'; names must be distinct.", nameof(terms));
            if (!double.IsFinite(term.Weight)) throw new ArgumentException($"Term '{term.Name}' has weight {term.Weight}; weights must be finite.", nameof(terms));
            if (term.Reward is null) throw new ArgumentException($"Term '{term.Name}' has no reward.", nameof(terms));
        }
    }

    /// <summary>A sum over <paramref name="terms"/>, in order (see <see cref="WeightedReward(IEnumerable{RewardTerm})"/>).</summary>
    public WeightedReward(params RewardTerm[] terms) : this((IEnumerable<RewardTerm>)terms)
    {
    }

    /// <summary>The terms, in order.</summary>
    public IReadOnlyList<RewardTerm> Terms => _terms;

    /// <inheritdoc />
    public RewardResult Score(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return ScoreBatch([text])[0];
    }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">A term returned a number of results other than the number of texts.</exception>
    public IReadOnlyList<RewardResult> ScoreBatch(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var totals = new double[texts.Count];
        var components = new Dictionary<string, double>[texts.Count];
        for (int i = 0; i < components.Length; i++) components[i] = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (RewardTerm term in _terms)
        {
            IReadOnlyList<RewardResult> results = term.Reward.ScoreBatch(texts);
            if (results.Count != texts.Count)
                throw new InvalidOperationException($"Term '{term.Name}' returned {results.Count} results for {texts.Count} texts.");
            for (int i = 0; i < results.Count; i++)
            {
                totals[i] += term.Weight * results[i].Total;
                components[i][term.Name] = results[i].Total;
                foreach (var (name, value) in results[i].Components) components[i][$"{term.Name}{Separator}{name}"] = value;
            }
        }

        var combined = new RewardResult[texts.Count];
        for (int i = 0; i < combined.Length; i++) combined[i] = new RewardResult(totals[i], components[i]);
        return combined;
    }

    /// <inheritdoc />
    public override string ToString() => string.Join(" + ", _terms.Select(t => $"{t.Weight.ToString(CultureInfo.InvariantCulture)}·{t.Name}"));
}
