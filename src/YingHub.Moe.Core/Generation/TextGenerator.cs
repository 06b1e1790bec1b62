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

    /// <summary>
    /// Streams the continuation of the prompt token ids <paramref name="prompt"/> as <see cref="TextChunk"/>s: the
    /// text of <see cref="StreamAsync"/> plus how many tokens each piece took and, on the last chunk, why generation
    /// ended. Generation stops at a text stop sequence (left out), a token stop sequence of
    /// <see cref="SamplingOptions.StopSequences"/> (kept), the <paramref name="endOfText"/> token (left out) or
    /// <see cref="SamplingOptions.MaxNewTokens"/>. Each <c>MoveNext</c> decodes one token, so a consumer controls the
    /// pace and can stop between tokens.
    /// </summary>
    /// <param name="prompt">The prompt's token ids (at least one).</param>
    /// <param name="options">How to sample.</param>
    /// <param name="stopSequences">Text stop sequences; empty strings are ignored.</param>
    /// <param name="endOfText">A token id that ends the text (e.g. GPT-2's <c>&lt;|endoftext|&gt;</c>), or null.</param>
    /// <param name="cancellationToken">Checked before every token.</param>
    /// <exception cref="ArgumentException">An empty prompt, a token id outside the vocabulary, or invalid options (thrown by this call, not on enumeration).</exception>
    public IEnumerable<TextChunk> Chunks(IReadOnlyList<long> prompt, SamplingOptions options, IReadOnlyList<string>? stopSequences = null,
        long? endOfText = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var stops = stopSequences?.Where(s => !string.IsNullOrEmpty(s)).ToArray() ?? [];
        var tokens = _tokens.Stream(prompt, options, cancellationToken); // validates eagerly
        return Decode(tokens, stops, options, endOfText);
    }

    private IEnumerable<string> Pieces(string prompt, SamplingOptions options, IReadOnlyList<string>? stopSequences, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        long[] ids = _tokenizer.Encode(prompt).Select(i => (long)i).ToArray();
        return Chunks(ids, options, stopSequences, null, cancellationToken).Where(c => c.Text.Length > 0).Select(c => c.Text);
    }

    private IEnumerable<TextChunk> Decode(IEnumerable<long> tokens, string[] stops, SamplingOptions options, long? endOfText)
    {
        var decoder = new TextStreamDecoder(_tokenizer);
        int longestStop = stops.Length == 0 ? 0 : stops.Max(s => s.Length);
        var pending = new StringBuilder(); // final text not yet yielded: a stop sequence may still be forming at its end
        var generated = new List<long>();
        int unreported = 0; // tokens consumed since the last chunk
        foreach (long token in tokens)
        {
            generated.Add(token);
            unreported++;
            if (token == endOfText)
            {
                pending.Append(decoder.Flush());
                yield return new TextChunk(pending.ToString(), unreported, GenerationFinish.EndOfText);
                yield break;
            }

            pending.Append(decoder.Push((int)token));
            if (stops.Length > 0)
            {
                string text = pending.ToString();
                int at = stops.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
                if (at >= 0)
                {
                    yield return new TextChunk(text[..at], unreported, GenerationFinish.StopSequence);
                    yield break;
                }

                // keep back what could still be the start of a stop sequence
                int safe = Math.Max(0, text.Length - (longestStop - 1));
                if (safe > 0)
                {
                    yield return new TextChunk(text[..safe], unreported, null);
                    unreported = 0;
                    pending.Remove(0, safe);
                }
            }
            else if (pending.Length > 0)
            {
                yield return new TextChunk(pending.ToString(), unreported, null);
                unreported = 0;
                pending.Clear();
            }
        }

        pending.Append(decoder.Flush());
        // the token generator ends early only at a token stop sequence; at the budget one may have completed as well
        bool stopped = generated.Count < options.MaxNewTokens || TokenGenerator.EndsWithStop(generated, 0, options.StopSequences);
        yield return new TextChunk(pending.ToString(), unreported, stopped ? GenerationFinish.StopSequence : GenerationFinish.Length);
    }
}
