using System.Text.RegularExpressions;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>
/// TF-IDF vectors as scikit-learn's <c>TfidfVectorizer</c> computes them by default: a document's entry for term t is
/// <c>tf(t, d) · idf(t)</c> with tf the raw count and <c>idf(t) = ln((1 + N) / (1 + df(t))) + 1</c> (N training
/// documents, df(t) of them containing t), then each row is divided by its L2 norm (a row without known terms stays 0).
/// The vocabulary and idf come from the training documents (<see cref="Fit"/>) and are sorted in ordinal term order.
/// </summary>
public sealed partial class TfIdfEmbedder : IDocumentEmbedder
{
    private readonly TfIdfOptions _options;
    private readonly Dictionary<string, int> _index;
    private readonly float[] _idf;

    private TfIdfEmbedder(TfIdfOptions options, string[] vocabulary, float[] idf)
    {
        _options = options;
        Vocabulary = vocabulary;
        _index = vocabulary.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i, StringComparer.Ordinal);
        _idf = idf;
    }

    /// <summary>The terms, in column order (ordinal).</summary>
    public IReadOnlyList<string> Vocabulary { get; }

    /// <summary>The idf of each term, in column order.</summary>
    public IReadOnlyList<float> Idf => _idf;

    /// <inheritdoc />
    public int Dimension => Vocabulary.Count;

    /// <summary>Learns the vocabulary and idf from <paramref name="documents"/>.</summary>
    /// <exception cref="ArgumentException">Invalid options, no documents, or no term survives the options.</exception>
    public static TfIdfEmbedder Fit(IReadOnlyList<string> documents, TfIdfOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(documents);
        options ??= new TfIdfOptions();
        options.ThrowIfInvalid(nameof(options));
        if (documents.Count == 0) throw new ArgumentException("TF-IDF needs at least one training document.", nameof(documents));
        var df = new Dictionary<string, int>(StringComparer.Ordinal);
        var total = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string document in documents)
        {
            foreach (var (term, count) in Count(document, options))
            {
                df[term] = df.GetValueOrDefault(term) + 1;
                total[term] = total.GetValueOrDefault(term) + count;
            }
        }

        var terms = df.Where(p => p.Value >= options.MinDocumentFrequency).Select(p => p.Key);
        if (options.MaxFeatures is int max)
            terms = terms.OrderByDescending(t => total[t]).ThenBy(t => t, StringComparer.Ordinal).Take(max);
        string[] vocabulary = terms.Order(StringComparer.Ordinal).ToArray();
        if (vocabulary.Length == 0) throw new ArgumentException($"No term of the {documents.Count} training documents survives the options (analyzer {options.Analyzer}, n-grams [{options.NGramMin}, {options.NGramMax}], MinDocumentFrequency {options.MinDocumentFrequency}).", nameof(documents));
        int n = documents.Count;
        float[] idf = vocabulary.Select(t => (float)(Math.Log((1.0 + n) / (1.0 + df[t])) + 1)).ToArray();
        return new TfIdfEmbedder(options, vocabulary, idf);
    }

    /// <inheritdoc />
    public Tensor Embed(IReadOnlyList<string> documents)
    {
        ArgumentNullException.ThrowIfNull(documents);
        int v = Dimension;
        var values = new float[(long)documents.Count * v];
        for (int d = 0; d < documents.Count; d++)
        {
            if (documents[d] is null) throw new ArgumentException($"Document {d} is null.", nameof(documents));
            var row = values.AsSpan(d * v, v);
            foreach (var (term, count) in Count(documents[d], _options))
            {
                if (_index.TryGetValue(term, out int j)) row[j] = count * _idf[j];
            }

            double norm = 0;
            foreach (float x in row) norm += (double)x * x;
            if (norm > 0)
            {
                float inverse = (float)(1 / Math.Sqrt(norm));
                for (int j = 0; j < v; j++) row[j] *= inverse;
            }
        }

        return torch.tensor(values, [documents.Count, v]); // (D, V)
    }

    /// <summary>The terms of <paramref name="document"/> with their counts, as the options define terms.</summary>
    internal static Dictionary<string, int> Count(string document, TfIdfOptions options)
    {
        string text = options.Lowercase ? document.ToLowerInvariant() : document;
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        if (options.Analyzer == TfIdfAnalyzer.Word)
        {
            string[] words = WordPattern().Matches(text).Select(m => m.Value).ToArray();
            for (int n = options.NGramMin; n <= options.NGramMax; n++)
            {
                for (int i = 0; i + n <= words.Length; i++)
                {
                    string term = string.Join(' ', words, i, n);
                    counts[term] = counts.GetValueOrDefault(term) + 1;
                }
            }
        }
        else
        {
            string collapsed = WhiteSpace().Replace(text, " ");
            for (int n = options.NGramMin; n <= options.NGramMax; n++)
            {
                for (int i = 0; i + n <= collapsed.Length; i++)
                {
                    string term = collapsed.Substring(i, n);
                    counts[term] = counts.GetValueOrDefault(term) + 1;
                }
            }
        }

        return counts;
    }

    [GeneratedRegex(@"\b\w\w+\b")]
    private static partial Regex WordPattern();

    [GeneratedRegex(@"\s\s+")]
    private static partial Regex WhiteSpace();
}
