using System.Text.Json;
using System.Text.Json.Serialization;

namespace YingHub.Moe.Core.Tokenizers;

/// <summary>
/// Saves a tokenizer beside a model (<c>tokenizer.json</c>, plus GPT-2's <c>vocab.json</c>) and loads it back, so a
/// checkpoint directory holds everything needed to encode prompts and decode output.
/// </summary>
public static class TokenizerFiles
{
    /// <summary>The tokenizer description file name.</summary>
    public const string FileName = "tokenizer.json";

    private const string Gpt2Vocab = "vocab.json";
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    private sealed record Spec(
        [property: JsonPropertyName("kind")] string Kind,
        [property: JsonPropertyName("vocab_size")] int VocabSize,
        [property: JsonPropertyName("vocabulary")] string? Vocabulary = null,
        [property: JsonPropertyName("special_tokens")] IReadOnlyList<string>? SpecialTokens = null);

    /// <summary>Writes <paramref name="tokenizer"/> into <paramref name="directory"/>.</summary>
    /// <param name="tokenizer">A <see cref="CharTokenizer"/> or a <see cref="TiktokenTextTokenizer"/>, or either with <see cref="SpecialTokensTokenizer">special tokens</see>.</param>
    /// <param name="directory">The checkpoint directory.</param>
    /// <param name="gpt2VocabPath">For GPT-2: the <c>vocab.json</c> it was built from, copied into the directory.</param>
    /// <exception cref="ArgumentException">An unsupported tokenizer, or GPT-2 without its vocabulary file.</exception>
    public static void Save(ITextTokenizer tokenizer, string directory, string? gpt2VocabPath = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        Directory.CreateDirectory(directory);
        var special = tokenizer as SpecialTokensTokenizer;
        Spec spec = (special?.Base ?? tokenizer) switch
        {
            CharTokenizer c => new Spec("char", c.VocabSize, c.Vocabulary),
            TiktokenTextTokenizer { Name: "gpt2" } => new Spec("gpt2", tokenizer.VocabSize),
            TiktokenTextTokenizer t => new Spec(t.Name, t.VocabSize),
            _ => throw new ArgumentException($"Tokenizer '{tokenizer.Name}' ({(special?.Base ?? tokenizer).GetType().Name}) cannot be saved.", nameof(tokenizer)),
        };
        if (special is not null) spec = spec with { VocabSize = special.VocabSize, SpecialTokens = special.SpecialTokens };
        if (spec.Kind == "gpt2")
        {
            if (gpt2VocabPath is null || !File.Exists(gpt2VocabPath))
                throw new ArgumentException($"Saving a GPT-2 tokenizer needs the vocab.json it came from; got '{gpt2VocabPath}'.", nameof(gpt2VocabPath));
            File.Copy(gpt2VocabPath, Path.Combine(directory, Gpt2Vocab), overwrite: true);
        }

        File.WriteAllText(Path.Combine(directory, FileName), JsonSerializer.Serialize(spec, Json));
    }

    /// <summary>Loads the tokenizer saved in <paramref name="directory"/>.</summary>
    /// <exception cref="FileNotFoundException">No tokenizer there.</exception>
    /// <exception cref="InvalidDataException">The description is malformed or names an unknown kind.</exception>
    public static ITextTokenizer Load(string directory)
    {
        string path = Path.Combine(directory, FileName);
        if (!File.Exists(path)) throw new FileNotFoundException($"No tokenizer in '{directory}': '{FileName}' is missing.", path);
        Spec spec;
        try
        {
            spec = JsonSerializer.Deserialize<Spec>(File.ReadAllText(path)) ?? throw new InvalidDataException($"'{path}' is empty.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{path}' is not a tokenizer description: {ex.Message}", ex);
        }

        ITextTokenizer tokenizer = spec.Kind switch
        {
            "char" => new CharTokenizer(spec.Vocabulary ?? throw new InvalidDataException($"'{path}': a char tokenizer needs its vocabulary.")),
            "gpt2" => TiktokenTextTokenizer.Gpt2(Path.Combine(directory, Gpt2Vocab)),
            "cl100k" => TiktokenTextTokenizer.Cl100k(),
            "o200k" => TiktokenTextTokenizer.O200k(),
            _ => throw new InvalidDataException($"'{path}': unknown tokenizer kind '{spec.Kind}' (char, gpt2, cl100k, o200k)."),
        };
        if (spec.SpecialTokens is { Count: > 0 } tokens)
        {
            try
            {
                tokenizer = new SpecialTokensTokenizer(tokenizer, tokens);
            }
            catch (ArgumentException ex)
            {
                throw new InvalidDataException($"'{path}': special_tokens: {ex.Message}", ex);
            }
        }

        if (tokenizer.VocabSize != spec.VocabSize)
            throw new InvalidDataException($"'{path}' records {spec.VocabSize} tokens but the {spec.Kind} tokenizer has {tokenizer.VocabSize}.");
        return tokenizer;
    }
}
