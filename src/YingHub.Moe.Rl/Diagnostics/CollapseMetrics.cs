using YingHub.Moe.Rewards.Text;
using YingHub.Moe.Rl.Rewards;

namespace YingHub.Moe.Rl.Diagnostics;

/// <summary>
/// Signs of mode collapse in one batch of responses (a policy that found one high-reward string and repeats it).
/// Units are tokens for <see cref="OfTokens"/>, words (<see cref="WordTokenizer.Words"/>) for <see cref="OfTexts"/>.
/// </summary>
/// <param name="IdenticalShare">
/// <c>1 − distinct responses / responses</c>: the share of responses that duplicate an earlier one. 0 when all
/// differ; (n − 1) / n when all n are the same.
/// </param>
/// <param name="Distinct2">
/// Distinct bigrams / bigrams over the whole batch (distinct-2, Li et al. 2016, "A Diversity-Promoting Objective
/// Function for Neural Conversation Models"); 1 when the batch has no bigram.
/// </param>
/// <param name="Distinct3">Distinct trigrams / trigrams over the whole batch (distinct-3); 1 when the batch has no trigram.</param>
/// <param name="RepeatedNgramRate">
/// Within each response, the share of its n-grams that equal an earlier n-gram of the same response (a loop such as
/// <c>the the the</c>), averaged over the responses that have at least one n-gram; 0 when none has.
/// </param>
/// <param name="MeanLength">Mean tokens (or words) per response.</param>
public sealed record CollapseMetrics(double IdenticalShare, double Distinct2, double Distinct3, double RepeatedNgramRate, double MeanLength)
{
    /// <summary>The default n of <see cref="RepeatedNgramRate"/>.</summary>
    public const int DefaultRepeatedNgramSize = 3;

    /// <summary>The metrics of token responses (e.g. the sampled response ids of a rollout).</summary>
    /// <param name="responses">One token list per response, at least one response; responses may be empty.</param>
    /// <param name="repeatedNgramSize">The n of <see cref="RepeatedNgramRate"/>, ≥ 1.</param>
    /// <exception cref="ArgumentException">No responses, a null response, or <paramref name="repeatedNgramSize"/> below 1.</exception>
    public static CollapseMetrics OfTokens(IReadOnlyList<IReadOnlyList<long>> responses, int repeatedNgramSize = DefaultRepeatedNgramSize)
    {
        ArgumentNullException.ThrowIfNull(responses);
        for (int i = 0; i < responses.Count; i++)
            if (responses[i] is null) throw new ArgumentException($"Response {i} is null.", nameof(responses));
        return Compute(responses, repeatedNgramSize, nameof(responses));
    }

    /// <summary>The metrics of text responses, over their words (lower-cased, see <see cref="WordTokenizer.Words"/>).</summary>
    /// <param name="responses">The texts, at least one.</param>
    /// <param name="repeatedNgramSize">The n of <see cref="RepeatedNgramRate"/>, ≥ 1.</param>
    /// <exception cref="ArgumentException">No responses, a null response, or <paramref name="repeatedNgramSize"/> below 1.</exception>
    public static CollapseMetrics OfTexts(IReadOnlyList<string> responses, int repeatedNgramSize = DefaultRepeatedNgramSize)
    {
        ArgumentNullException.ThrowIfNull(responses);
        var words = new IReadOnlyList<string>[responses.Count];
        for (int i = 0; i < words.Length; i++)
            words[i] = WordTokenizer.Words(responses[i] ?? throw new ArgumentException($"Response {i} is null.", nameof(responses)));
        return Compute(words, repeatedNgramSize, nameof(responses));
    }

    private static CollapseMetrics Compute<T>(IReadOnlyList<IReadOnlyList<T>> responses, int n, string paramName)
    {
        if (responses.Count == 0) throw new ArgumentException("At least one response is needed.", paramName);
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1, "repeatedNgramSize");
        var distinctResponses = new HashSet<Ngram<T>>();
        foreach (var r in responses) distinctResponses.Add(new Ngram<T>(r, 0, r.Count));
        double repeatedSum = 0;
        int withNgrams = 0;
        foreach (var r in responses)
        {
            if (r.Count < n) continue;
            int grams = r.Count - n + 1;
            var seen = new HashSet<Ngram<T>>();
            int repeated = 0;
            for (int i = 0; i < grams; i++) if (!seen.Add(new Ngram<T>(r, i, n))) repeated++;
            repeatedSum += repeated / (double)grams;
            withNgrams++;
        }

        return new CollapseMetrics(
            IdenticalShare: 1 - distinctResponses.Count / (double)responses.Count,
            Distinct2: DistinctN(responses, 2),
            Distinct3: DistinctN(responses, 3),
            RepeatedNgramRate: withNgrams == 0 ? 0 : repeatedSum / withNgrams,
            MeanLength: responses.Average(r => (double)r.Count));
    }

    private static double DistinctN<T>(IReadOnlyList<IReadOnlyList<T>> responses, int n)
    {
        var distinct = new HashSet<Ngram<T>>();
        int total = 0;
        foreach (var r in responses)
        {
            for (int i = 0; i + n <= r.Count; i++)
            {
                distinct.Add(new Ngram<T>(r, i, n));
                total++;
            }
        }

        return total == 0 ? 1 : distinct.Count / (double)total;
    }

    /// <summary>A window of a sequence, compared by its elements (no copy).</summary>
    private readonly struct Ngram<T>(IReadOnlyList<T> items, int start, int length) : IEquatable<Ngram<T>>
    {
        public bool Equals(Ngram<T> other)
        {
            if (length != other.Length) return false;
            var comparer = EqualityComparer<T>.Default;
            for (int i = 0; i < length; i++)
                if (!comparer.Equals(items[start + i], other.Item(i))) return false;
            return true;
        }

        public int Length => length;

        public T Item(int i) => items[start + i];

        public override bool Equals(object? obj) => obj is Ngram<T> other && Equals(other);

        public override int GetHashCode()
        {
            var hash = new HashCode();
            for (int i = 0; i < length; i++) hash.Add(items[start + i]);
            return hash.ToHashCode();
        }
    }
}
