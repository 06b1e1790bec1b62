using System.Text.Json;
using System.Text.Json.Nodes;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Core.Interop;

/// <summary>
/// The library's tokenizers as Hugging Face <c>tokenizers</c> files, and back:
/// <list type="bullet">
/// <item>GPT-2 (byte-level BPE): <c>tokenizer.json</c> with a <c>BPE</c> model, GPT-2's vocabulary and its merges (derived
/// from the ranks: each token's merge is the last step of BPE over its bytes using only lower-ranked tokens), a
/// <c>ByteLevel</c> pre-tokenizer and decoder, <c>&lt;|endoftext|&gt;</c> as a special added token.</item>
/// <item>Characters: <c>tokenizer.json</c> with a <c>WordLevel</c> model (each character a word, id = position), a
/// <c>Split</c> pre-tokenizer on the pattern <c>[\s\S]</c> (every character isolated) and a <c>Fuse</c> decoder (no
/// spaces between tokens): the documented vocabulary file of a char model.</item>
/// </list>
/// Reading takes those two back, and a SentencePiece <c>tokenizer.model</c> (Llama, Mistral, Mixtral) through
/// Microsoft.ML.Tokenizers. A <c>tokenizer.json</c> of another kind (Mistral's BPE with byte fallback) cannot be read
/// by Microsoft.ML.Tokenizers 2.0: loading says so and asks for the <c>tokenizer.model</c>.
/// </summary>
public static class HfTokenizerFile
{
    /// <summary>Hugging Face's tokenizer file name.</summary>
    public const string FileName = "tokenizer.json";

    /// <summary>The SentencePiece model file name.</summary>
    public const string SentencePieceFile = "tokenizer.model";

    private const string CharPattern = @"[\s\S]";
    private const string EndOfText = "<|endoftext|>";
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// Writes <paramref name="tokenizer"/> as <c>tokenizer.json</c> (and <c>tokenizer_config.json</c>) into
    /// <paramref name="directory"/>; returns the files written.
    /// </summary>
    /// <param name="tokenizer">A <see cref="CharTokenizer"/> or GPT-2 <see cref="TiktokenTextTokenizer"/>, or either with <see cref="SpecialTokensTokenizer">special tokens</see> (written as added special tokens).</param>
    /// <param name="directory">The target directory.</param>
    /// <param name="gpt2VocabPath">GPT-2's <c>vocab.json</c> (a library checkpoint holds it beside its tokenizer).</param>
    /// <exception cref="ArgumentException">Another tokenizer kind (cl100k, o200k), or GPT-2 without its vocabulary.</exception>
    public static IReadOnlyList<string> Write(ITextTokenizer tokenizer, string directory, string? gpt2VocabPath = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        JsonObject file;
        string tokenizerClass;
        int? endOfText = null;
        var special = tokenizer as SpecialTokensTokenizer;
        switch (special?.Base ?? tokenizer)
        {
            case CharTokenizer chars:
                var vocab = new JsonObject();
                for (int i = 0; i < chars.Vocabulary.Length; i++) vocab[chars.Vocabulary[i].ToString()] = i;
                file = Skeleton(
                    preTokenizer: new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = CharPattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    decoder: new JsonObject { ["type"] = "Fuse" },
                    model: new JsonObject { ["type"] = "WordLevel", ["vocab"] = vocab, ["unk_token"] = "<unk>" },
                    addedTokens: []);
                tokenizerClass = "PreTrainedTokenizerFast";
                break;
            case TiktokenTextTokenizer { Name: "gpt2" } gpt2:
                if (gpt2VocabPath is null || !File.Exists(gpt2VocabPath))
                    throw new ArgumentException($"Writing a GPT-2 tokenizer.json needs GPT-2's vocab.json; got '{gpt2VocabPath}'.", nameof(gpt2VocabPath));
                var ranks = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllText(gpt2VocabPath))
                    ?? throw new ArgumentException($"'{gpt2VocabPath}' is empty.", nameof(gpt2VocabPath));
                endOfText = gpt2.EndOfTextId;
                var byteLevel = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };
                file = Skeleton(
                    preTokenizer: byteLevel,
                    decoder: byteLevel.DeepClone(),
                    model: new JsonObject
                    {
                        ["type"] = "BPE", ["dropout"] = null, ["unk_token"] = null, ["continuing_subword_prefix"] = "", ["end_of_word_suffix"] = "",
                        ["fuse_unk"] = false, ["byte_fallback"] = false,
                        ["vocab"] = new JsonObject(ranks.OrderBy(kv => kv.Value).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                        ["merges"] = new JsonArray(Gpt2Merges(ranks).Select(m => (JsonNode?)m).ToArray()),
                    },
                    addedTokens: endOfText is { } eot ? [eot] : []);
                tokenizerClass = "GPT2TokenizerFast";
                break;
            default:
                throw new ArgumentException($"Tokenizer '{tokenizer.Name}' has no Hugging Face tokenizer.json writer here (char and gpt2 have).", nameof(tokenizer));
        }

        if (special is not null)
        {
            // Hugging Face's additional_special_tokens: matched whole before the model runs, ids after the base vocabulary
            var added = (JsonArray)file["added_tokens"]!;
            for (int i = 0; i < special.SpecialTokens.Count; i++) added.Add(AddedToken(special.Base.VocabSize + i, special.SpecialTokens[i]));
        }

        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, FileName), file.ToJsonString(Indented));
        var config = new JsonObject
        {
            ["tokenizer_class"] = tokenizerClass,
            ["model_max_length"] = 1_000_000_000_000_000_019L,
            ["bos_token"] = endOfText is null ? null : EndOfText,
            ["eos_token"] = endOfText is null ? null : EndOfText,
            ["unk_token"] = endOfText is null ? null : EndOfText,
            ["add_prefix_space"] = false,
            ["clean_up_tokenization_spaces"] = false,
        };
        if (special is not null) config["additional_special_tokens"] = new JsonArray(special.SpecialTokens.Select(t => (JsonNode?)t).ToArray());
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), config.ToJsonString(Indented));
        return [FileName, "tokenizer_config.json"];
    }

    /// <summary>
    /// The tokenizer of a Hugging Face model directory: its <c>tokenizer.json</c> when it is one this class writes
    /// (character WordLevel, GPT-2 byte-level BPE), else its SentencePiece <c>tokenizer.model</c>.
    /// </summary>
    /// <exception cref="FileNotFoundException">Neither file is there.</exception>
    /// <exception cref="InvalidDataException">A tokenizer Microsoft.ML.Tokenizers cannot read; the message names the kind.</exception>
    public static ITextTokenizer Load(string directory)
    {
        string json = Path.Combine(directory, FileName), model = Path.Combine(directory, SentencePieceFile);
        string? unreadable = null;
        if (File.Exists(json))
        {
            JsonObject root;
            try
            {
                root = JsonNode.Parse(File.ReadAllText(json)) as JsonObject ?? throw new InvalidDataException($"'{json}' is not a JSON object.");
            }
            catch (JsonException ex)
            {
                throw new InvalidDataException($"'{json}' is not valid JSON: {ex.Message}", ex);
            }

            var m = root["model"] as JsonObject;
            string? kind = m?["type"]?.GetValue<string>();
            string? pre = root["pre_tokenizer"]?["type"]?.GetValue<string>();
            if (kind == "WordLevel" && pre == "Split" && root["pre_tokenizer"]?["pattern"]?["Regex"]?.GetValue<string>() == CharPattern)
            {
                var vocab = m!["vocab"]!.AsObject().Select(kv => (Token: kv.Key, Id: kv.Value!.GetValue<int>())).OrderBy(p => p.Id).ToList();
                if (vocab.Where((p, i) => p.Id != i || p.Token.Length != 1).Any())
                    throw new InvalidDataException($"'{json}': a character WordLevel vocabulary needs one character per id 0..{vocab.Count - 1}.");
                return WithSpecialTokens(new CharTokenizer(string.Concat(vocab.Select(p => p.Token))), root, json);
            }

            if (kind == "BPE" && pre == "ByteLevel" && m!["byte_fallback"]?.GetValue<bool>() != true)
            {
                var vocab = m["vocab"]!.AsObject().ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<int>());
                if (!MergesFollowIds(m["merges"] as JsonArray, vocab))
                    throw new InvalidDataException($"'{json}': a byte-level BPE whose merge order differs from its token ids cannot be read here (the library reads GPT-2-style vocabularies, where the id is the merge rank).");
                int bpeSize = vocab.Count;
                foreach (var added in (root["added_tokens"] as JsonArray ?? []).OfType<JsonObject>())
                {
                    // GPT-2's own <|endoftext|> (and any added token inside the BPE's range) belongs to the BPE; those after it are special tokens
                    int id = added["id"]!.GetValue<int>();
                    string content = added["content"]!.GetValue<string>();
                    if (id < bpeSize || content == EndOfText) vocab.TryAdd(content, id);
                }

                return WithSpecialTokens(TiktokenTextTokenizer.Gpt2(vocab, json), root, json);
            }

            unreadable = $"'{json}' is a {kind ?? "(no model type)"} tokenizer with pre-tokenizer {pre ?? "(none)"}{(m?["byte_fallback"]?.GetValue<bool>() == true ? " and byte fallback" : "")}, which Microsoft.ML.Tokenizers 2.0 cannot read from tokenizer.json";
        }

        if (File.Exists(model)) return SentencePieceTextTokenizer.Load(model);
        if (unreadable is not null) throw new InvalidDataException($"{unreadable}; put the SentencePiece '{SentencePieceFile}' beside it.");
        throw new FileNotFoundException($"No tokenizer in '{directory}': neither '{FileName}' nor '{SentencePieceFile}'.", json);
    }

    /// <summary>
    /// GPT-2's merges from its ranks: for each multi-byte token in rank order, byte-pair encoding of its own characters
    /// with only lower-ranked tokens ends in two parts, and merging those is the token's merge.
    /// </summary>
    internal static List<string> Gpt2Merges(IReadOnlyDictionary<string, int> ranks)
    {
        var merges = new List<string>();
        foreach (var (token, rank) in ranks.Where(kv => kv.Key != EndOfText && kv.Key.Length > 1).OrderBy(kv => kv.Value))
        {
            var parts = token.Select(c => c.ToString()).ToList();
            while (parts.Count > 2)
            {
                int best = -1, bestRank = int.MaxValue;
                for (int i = 0; i + 1 < parts.Count; i++)
                {
                    if (ranks.TryGetValue(parts[i] + parts[i + 1], out int r) && r < rank && r < bestRank) (best, bestRank) = (i, r);
                }

                if (best < 0) break;
                parts[best] += parts[best + 1];
                parts.RemoveAt(best + 1);
            }

            if (parts.Count != 2) throw new InvalidDataException($"GPT-2 token '{token}' (rank {rank}) does not split into two lower-ranked tokens; the vocabulary is not a BPE rank table.");
            merges.Add(parts[0] + " " + parts[1]);
        }

        return merges;
    }

    private static bool MergesFollowIds(JsonArray? merges, IReadOnlyDictionary<string, int> vocab)
    {
        if (merges is null) return false;
        int last = -1;
        foreach (var node in merges)
        {
            string merge = node is JsonArray pair ? pair[0]!.GetValue<string>() + " " + pair[1]!.GetValue<string>() : node!.GetValue<string>();
            int space = merge.IndexOf(' ', StringComparison.Ordinal);
            if (space < 0 || !vocab.TryGetValue(string.Concat(merge.AsSpan(0, space), merge.AsSpan(space + 1)), out int id) || id <= last) return false;
            last = id;
        }

        return true;
    }

    /// <summary>The added tokens of <paramref name="root"/> with ids from the base's size on, as special tokens over <paramref name="baseTokenizer"/>.</summary>
    private static ITextTokenizer WithSpecialTokens(ITextTokenizer baseTokenizer, JsonObject root, string path)
    {
        var added = (root["added_tokens"] as JsonArray ?? []).OfType<JsonObject>()
            .Select(a => (Id: a["id"]!.GetValue<int>(), Content: a["content"]!.GetValue<string>()))
            .Where(a => a.Id >= baseTokenizer.VocabSize).OrderBy(a => a.Id).ToList();
        if (added.Count == 0) return baseTokenizer;
        if (added.Where((a, i) => a.Id != baseTokenizer.VocabSize + i).Any())
            throw new InvalidDataException($"'{path}': added tokens after the vocabulary must take the ids {baseTokenizer.VocabSize}.. in order; got {string.Join(", ", added.Select(a => a.Id))}.");
        return new SpecialTokensTokenizer(baseTokenizer, added.Select(a => a.Content));
    }

    private static JsonObject AddedToken(int id, string content, bool normalized = false) => new()
    {
        ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = normalized, ["special"] = true,
    };

    private static JsonObject Skeleton(JsonObject preTokenizer, JsonNode decoder, JsonObject model, int[] addedTokens) => new()
    {
        ["version"] = "1.0",
        ["truncation"] = null,
        ["padding"] = null,
        ["added_tokens"] = new JsonArray(addedTokens.Select(id => (JsonNode?)AddedToken(id, EndOfText, normalized: true)).ToArray()),
        ["normalizer"] = null,
        ["pre_tokenizer"] = preTokenizer,
        ["post_processor"] = null,
        ["decoder"] = decoder,
        ["model"] = model,
    };
}
