namespace YingHub.Moe.Rewards;

/// <summary>
/// A language model that measures how probable a text is, for the coherence component. Implementations (a YingHub.Moe
/// model, GPT-2) live elsewhere; the reward calls them from the calling thread only, never concurrently.
/// </summary>
public interface ILanguageModelScorer
{
    /// <summary>
    /// The perplexity of <paramref name="text"/>: exp(mean negative log-likelihood per predicted token), so ≥ 1,
    /// lower for more fluent text. A text too short to predict any token (one token, no begin token) must still get a
    /// perplexity ≥ 1, not an exception: <see cref="LanguageModels.CausalLMPerplexityScorer"/> gives the vocabulary size.
    /// </summary>
    /// <param name="text">A non-empty text.</param>
    double Perplexity(string text);

    /// <summary>Perplexities of several texts, in order; the default calls <see cref="Perplexity"/> for each. Override to batch.</summary>
    /// <param name="texts">Non-empty texts.</param>
    IReadOnlyList<double> Perplexities(IReadOnlyList<string> texts)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var result = new double[texts.Count];
        for (int i = 0; i < result.Length; i++) result[i] = Perplexity(texts[i]);
        return result;
    }
}
