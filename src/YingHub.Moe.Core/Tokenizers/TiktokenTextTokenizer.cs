using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace YingHub.Moe.Core.Tokenizers;

/// <summary>
/// Byte-level BPE tokenizers through <c>Microsoft.ML.Tokenizers</c>' <see cref="TiktokenTokenizer"/>: GPT-2
/// (<c>r50k_base</c>, the ids of tiktoken and Hugging Face <c>gpt2</c>) built from a <c>vocab.json</c>, and
/// <c>cl100k_base</c> / <c>o200k_base</c> from their data packages.
/// </summary>
public sealed class TiktokenTextTokenizer : ITextTokenizer
{
    /// <summary>GPT-2's end-of-text token id.</summary>
    public const int Gpt2EndOfText = 50256;

    private const string EndOfText = "<|endoftext|>";
    private readonly TiktokenTokenizer _tokenizer;

    private TiktokenTextTokenizer(string name, TiktokenTokenizer tokenizer, int vocabSize, int? endOfText)
    {
        Name = name;
        _tokenizer = tokenizer;
        VocabSize = vocabSize;
        EndOfTextId = endOfText;
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <inheritdoc />
    public int VocabSize { get; }

    /// <summary>The end-of-text token id, if the encoding has one.</summary>
    public int? EndOfTextId { get; }

    /// <summary>
    /// GPT-2 from its Hugging Face <c>vocab.json</c>. The tiktoken rank table is derived in memory: each token's
    /// characters are mapped back to bytes through GPT-2's byte-to-unicode table, and its id is its rank (the special
    /// <c>&lt;|endoftext|&gt;</c> = 50256 is registered as a special token). Runs of spaces, tabs, contractions,
    /// non-ASCII text and emoji get exactly GPT-2's ids (unlike <c>CodeGenTokenizer</c>, which encodes runs of spaces
    /// with CodeGen's extra tokens).
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a GPT-2 vocabulary.</exception>
    public static TiktokenTextTokenizer Gpt2(string vocabJsonPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(vocabJsonPath);
        if (!File.Exists(vocabJsonPath)) throw new FileNotFoundException($"GPT-2 vocabulary '{vocabJsonPath}' does not exist.", vocabJsonPath);
        Dictionary<string, int> vocab;
        try
        {
            vocab = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(vocabJsonPath))
                ?? throw new InvalidDataException($"'{vocabJsonPath}' is empty.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{vocabJsonPath}' is not a vocab.json token-to-id map: {ex.Message}", ex);
        }

        return Gpt2(vocab, vocabJsonPath);
    }

    /// <summary>
    /// A GPT-2-style byte-level BPE from its token-to-id map (tokens in GPT-2's byte-to-unicode alphabet; the id is the
    /// merge rank, and <c>&lt;|endoftext|&gt;</c>, if present, is the special token), e.g. the <c>model.vocab</c> of a
    /// Hugging Face <c>tokenizer.json</c>. <paramref name="source"/> names the origin in messages.
    /// </summary>
    /// <exception cref="InvalidDataException">A token holds a character outside GPT-2's byte-to-unicode table.</exception>
    public static TiktokenTextTokenizer Gpt2(IReadOnlyDictionary<string, int> vocab, string source)
    {
        ArgumentNullException.ThrowIfNull(vocab);
        string vocabJsonPath = source;
        var unicodeToByte = ByteLevel.UnicodeToByte;
        var ranks = new StringBuilder(vocab.Count * 16);
        var bytes = new List<byte>(32);
        foreach (var (token, id) in vocab.OrderBy(kv => kv.Value))
        {
            if (token == EndOfText) continue;
            bytes.Clear();
            foreach (char c in token)
            {
                if (!unicodeToByte.TryGetValue(c, out byte b))
                    throw new InvalidDataException($"'{vocabJsonPath}': token {id} holds '{c}', which is not in GPT-2's byte-to-unicode table.");
                bytes.Add(b);
            }

            ranks.Append(Convert.ToBase64String(bytes.ToArray())).Append(' ').Append(id).Append('\n');
        }

        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(ranks.ToString()));
        var tokenizer = TiktokenTokenizer.CreateForModel("gpt2", stream);
        return new TiktokenTextTokenizer("gpt2", tokenizer, vocab.Count, vocab.TryGetValue(EndOfText, out int eot) ? eot : null);
    }

    /// <summary><c>cl100k_base</c> (GPT-3.5/4) from the Microsoft.ML.Tokenizers.Data.Cl100kBase package.</summary>
    public static TiktokenTextTokenizer Cl100k() => FromEncoding("cl100k", "cl100k_base");

    /// <summary><c>o200k_base</c> (GPT-4o) from the Microsoft.ML.Tokenizers.Data.O200kBase package.</summary>
    public static TiktokenTextTokenizer O200k() => FromEncoding("o200k", "o200k_base");

    private static TiktokenTextTokenizer FromEncoding(string name, string encoding)
    {
        var tokenizer = TiktokenTokenizer.CreateForEncoding(encoding);
        // In cl100k_base and o200k_base the special tokens hold the highest ids, so the last one bounds the vocabulary.
        int vocabSize = (tokenizer.SpecialTokens?.Values.DefaultIfEmpty(-1).Max() ?? -1) + 1;
        if (vocabSize <= 0) throw new InvalidOperationException($"The {encoding} encoding has no special tokens to size its vocabulary by.");
        int? eot = tokenizer.SpecialTokens is { } special && special.TryGetValue(EndOfText, out int id) ? id : null;
        return new TiktokenTextTokenizer(name, tokenizer, vocabSize, eot);
    }

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

        return _tokenizer.Decode(ids.ToArray());
    }
}
