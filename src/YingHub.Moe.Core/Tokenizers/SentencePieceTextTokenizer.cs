using Microsoft.ML.Tokenizers;

namespace YingHub.Moe.Core.Tokenizers;

/// <summary>
/// A SentencePiece BPE tokenizer (<c>tokenizer.model</c>, as Llama, Mistral and Mixtral ship it) through
/// <c>Microsoft.ML.Tokenizers</c>' <see cref="LlamaTokenizer"/>. Encoding adds no beginning-of-sentence token (prompts
/// are continued as given); the model's <c>bos_token_id</c> can be prepended by the caller.
/// </summary>
public sealed class SentencePieceTextTokenizer : ITextTokenizer
{
    private readonly LlamaTokenizer _tokenizer;

    private SentencePieceTextTokenizer(LlamaTokenizer tokenizer)
    {
        _tokenizer = tokenizer;
        VocabSize = tokenizer.Vocabulary.Count;
    }

    /// <summary>Reads a SentencePiece model file.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a SentencePiece BPE model Microsoft.ML.Tokenizers can read.</exception>
    public static SentencePieceTextTokenizer Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"SentencePiece model '{path}' does not exist.", path);
        using var stream = File.OpenRead(path);
        try
        {
            return new SentencePieceTextTokenizer(LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false));
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or NotSupportedException or FormatException or IOException)
        {
            throw new InvalidDataException($"'{path}' is not a SentencePiece BPE model Microsoft.ML.Tokenizers can read: {ex.Message}", ex);
        }
    }

    /// <inheritdoc />
    public string Name => "sentencepiece";

    /// <inheritdoc />
    public int VocabSize { get; }

    /// <inheritdoc />
    public int[] Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return _tokenizer.EncodeToIds(text).ToArray();
    }

    /// <inheritdoc />
    public string Decode(ReadOnlySpan<int> ids)
    {
        TokenIds.ThrowIfOutside(ids, VocabSize);

        return _tokenizer.Decode(ids.ToArray()) ?? string.Empty;
    }
}
