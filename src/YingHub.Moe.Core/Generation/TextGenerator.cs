using System.Runtime.CompilerServices;
using System.Text;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Core.Generation;

/// <summary>
/// Text in, text out: encodes the prompt, decodes with <see cref="TokenGenerator"/>, and streams text as it becomes
/// final (a character split across byte-level BPE tokens is held back until complete). Text stop sequences end the
/// generation and are not part of the result.
/// </summary>
public sealed class TextGenerator
{
    private readonly TokenGenerator _tokens;
    private readonly ITextTokenizer _tokenizer;

    /// <summary>Generates with <paramref name="model"/> and its <paramref name="tokenizer"/>.</summary>
    /// <exception cref="ArgumentException">The tokenizer's vocabulary differs from the model's.</exception>
    public TextGenerator(MoeForCausalLM model, ITextTokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (tokenizer.VocabSize != model.Options.VocabSize)
            throw new ArgumentException($"The {tokenizer.Name} tokenizer has {tokenizer.VocabSize} tokens but the model {model.Options.VocabSize}.", nameof(tokenizer));
        _tokens = new TokenGenerator(model);
        _tokenizer = tokenizer;
    }

    /// <summary>The generated continuation of <paramref name="prompt"/>.</summary>
    public string Generate(string prompt, SamplingOptions options, IReadOnlyList<string>? stopSequences = null, CancellationToken cancellationToken = default)
    {
        var text = new StringBuilder();
        foreach (string piece in Pieces(prompt, options, stopSequences, cancellationToken)) text.Append(piece);
        return text.ToString();
    }

    /// <summary>
    /// Streams the continuation of <paramref name="prompt"/> piece by piece; concatenated, the pieces equal
    /// <see cref="Generate"/>'s result for the same options and seed.
    /// </summary>
    /// <exception cref="ArgumentException">The prompt cannot be encoded, or the options are invalid.</exception>
    public async IAsyncEnumerable<string> StreamAsync(string prompt, SamplingOptions options, IReadOnlyList<string>? stopSequences = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        foreach (string piece in Pieces(prompt, options, stopSequences, cancellationToken))
        {
            yield return piece;
            await Task.Yield(); // let the consumer run between tokens
        }
    }

    private IEnumerable<string> Pieces(string prompt, SamplingOptions options, IReadOnlyList<string>? stopSequences, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var stops = stopSequences?.Where(s => !string.IsNullOrEmpty(s)).ToArray() ?? [];
        long[] ids = _tokenizer.Encode(prompt).Select(i => (long)i).ToArray();
        var tokens = _tokens.Stream(ids, options, cancellationToken); // validates eagerly
        return Decode(tokens, stops);
    }

    private IEnumerable<string> Decode(IEnumerable<long> tokens, string[] stops)
    {
        var decoder = new TextStreamDecoder(_tokenizer);
        int longestStop = stops.Length == 0 ? 0 : stops.Max(s => s.Length);
        var pending = new StringBuilder(); // final text not yet yielded: a stop sequence may still be forming at its end
        foreach (long token in tokens)
        {
            pending.Append(decoder.Push((int)token));
            if (stops.Length > 0)
            {
                string text = pending.ToString();
                int at = stops.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
                if (at >= 0)
                {
                    if (at > 0) yield return text[..at];
                    yield break;
                }

                // keep back what could still be the start of a stop sequence
                int safe = Math.Max(0, text.Length - (longestStop - 1));
                if (safe > 0)
                {
                    yield return text[..safe];
                    pending.Remove(0, safe);
                }
            }
            else if (pending.Length > 0)
            {
                yield return pending.ToString();
                pending.Clear();
            }
        }

        pending.Append(decoder.Flush());
        if (pending.Length > 0) yield return pending.ToString();
    }
}
