using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Interop;

/// <summary>What <see cref="MixtralExport.Save"/> wrote.</summary>
/// <param name="Files">The files of the directory, relative to it.</param>
/// <param name="Notes">What was left out and why (e.g. a tokenizer without a Hugging Face writer), one sentence each.</param>
public sealed record MixtralExportResult(IReadOnlyList<string> Files, IReadOnlyList<string> Notes);

/// <summary>
/// Writes a model as a Hugging Face Mixtral directory (<c>yinghub export --format hf-mixtral</c>), which
/// Transformers' <c>MixtralForCausalLM.from_pretrained</c>, vLLM and the other Mixtral loaders read:
/// <c>config.json</c> (<see cref="MixtralLayout.Config"/>), the weights in float32 as <c>model.safetensors</c> with
/// Hugging Face's names and (out, in) layout and <c>__metadata__ {"format": "pt"}</c> (sharded as
/// <c>model-0000i-of-0000n.safetensors</c> plus <c>model.safetensors.index.json</c> above the shard size), a
/// <c>generation_config.json</c>, and the tokenizer (<see cref="HfTokenizerFile"/>). A model the layout cannot express
/// is refused, naming every option that does not fit (<see cref="MixtralLayout.Misfits"/>). The directory is written
/// beside the target and swapped in whole.
/// </summary>
public static class MixtralExport
{
    /// <summary>The format's name on the command line.</summary>
    public const string FormatName = "hf-mixtral";

    /// <summary>Transformers' default shard size, 5 GB (10⁹ bytes a GB, as its <c>max_shard_size="5GB"</c>).</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    /// <summary>The single weights file name.</summary>
    public const string WeightsFile = "model.safetensors";

    /// <summary>The shard index file name.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Exports <paramref name="model"/> (and its tokenizer, if given) to <paramref name="directory"/> (created or replaced).</summary>
    /// <param name="model">The model; its options must fit the Mixtral layout.</param>
    /// <param name="directory">The output directory.</param>
    /// <param name="tokenizer">The tokenizer to write as <c>tokenizer.json</c>, or null.</param>
    /// <param name="gpt2VocabPath">For a GPT-2 tokenizer, its <c>vocab.json</c>.</param>
    /// <param name="maxShardBytes">The largest shard, in bytes; more weights than this are split over several files.</param>
    /// <exception cref="ArgumentException">The model does not fit the Mixtral layout (the message lists every misfit), or the shard size is not positive.</exception>
    public static MixtralExportResult Save(MoeForCausalLM model, string directory, ITextTokenizer? tokenizer = null, string? gpt2VocabPath = null,
        long maxShardBytes = DefaultMaxShardBytes)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (maxShardBytes < 1) throw new ArgumentOutOfRangeException(nameof(maxShardBytes), maxShardBytes, "The shard size must be at least 1 byte.");
        var options = model.Options;
        var misfits = MixtralLayout.Misfits(options);
        if (misfits.Count > 0)
            throw new ArgumentException($"This model does not fit Hugging Face's Mixtral layout: {string.Join("; ", misfits)}.", nameof(model));

        var files = new List<string>();
        var notes = new List<string>();
        AtomicDirectory.Replace(directory, staging =>
        {
            using var scope = torch.NewDisposeScope();
            int? endOfText = (tokenizer as TiktokenTextTokenizer)?.EndOfTextId;
            Write(staging, "config.json", MixtralLayout.Config(options, endOfText), files);
            var generation = new JsonObject { ["_from_model_config"] = true, ["bos_token_id"] = endOfText, ["eos_token_id"] = endOfText };
            Write(staging, "generation_config.json", generation, files);
            var tensors = MixtralWeights.ToHuggingFace(model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value), options)
                .Select(p => (p.Name, Tensor: p.Tensor.to(ScalarType.Float32))).ToList();
            files.AddRange(WriteShards(staging, tensors, maxShardBytes));
            if (tokenizer is null) notes.Add("No tokenizer was given: the directory has no tokenizer.json.");
            else
            {
                try
                {
                    files.AddRange(HfTokenizerFile.Write(tokenizer, staging, gpt2VocabPath));
                }
                catch (ArgumentException ex)
                {
                    notes.Add($"The tokenizer was not written: {ex.Message}");
                }
            }
        });
        return new MixtralExportResult(files.Order(StringComparer.Ordinal).ToList(), notes);
    }

    /// <summary>
    /// Exports the library checkpoint in <paramref name="checkpoint"/> (<see cref="MoeCheckpoint"/>, with its
    /// tokenizer when it has one) to <paramref name="directory"/>.
    /// </summary>
    /// <exception cref="ArgumentException">The model does not fit the Mixtral layout.</exception>
    public static MixtralExportResult FromCheckpoint(string checkpoint, string directory, long maxShardBytes = DefaultMaxShardBytes)
    {
        using var model = MoeCheckpoint.Load(checkpoint);
        ITextTokenizer? tokenizer = File.Exists(Path.Combine(checkpoint, TokenizerFiles.FileName)) ? TokenizerFiles.Load(checkpoint) : null;
        string vocab = Path.Combine(checkpoint, "vocab.json");
        return Save(model, directory, tokenizer, File.Exists(vocab) ? vocab : null, maxShardBytes);
    }

    /// <summary>
    /// A size such as <c>5GB</c>, <c>500MB</c>, <c>2GiB</c> or <c>1000</c> (bytes) in bytes; units B, KB, MB, GB, TB
    /// are powers of 1000 and KiB, MiB, GiB, TiB powers of 1024, as Transformers' <c>convert_file_size_to_int</c>.
    /// </summary>
    /// <exception cref="FormatException">Not a positive whole number followed by one of those units.</exception>
    public static long ParseSize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string s = text.Trim();
        int end = 0;
        while (end < s.Length && (char.IsAsciiDigit(s[end]) || s[end] == '.')) end++;
        (string Unit, double Factor)[] units = [("", 1), ("B", 1), ("KB", 1e3), ("MB", 1e6), ("GB", 1e9), ("TB", 1e12),
            ("KIB", 1L << 10), ("MIB", 1L << 20), ("GIB", 1L << 30), ("TIB", 1L << 40)];
        string unit = s[end..].Trim().ToUpperInvariant();
        if (end == 0 || !double.TryParse(s[..end], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double value)
            || units.All(u => u.Unit != unit))
            throw new FormatException($"'{text}' is not a size: a number and one of B, KB, MB, GB, TB, KiB, MiB, GiB, TiB (e.g. 5GB).");
        double bytes = value * units.First(u => u.Unit == unit).Factor;
        if (bytes < 1 || bytes > long.MaxValue) throw new FormatException($"'{text}' is not a size between 1 byte and {long.MaxValue} bytes.");
        return (long)bytes;
    }

    /// <summary>Writes the tensors in order into as few shards of at most <paramref name="maxBytes"/> as fill allows (one tensor larger than that gets a shard of its own).</summary>
    private static List<string> WriteShards(string directory, List<(string Name, Tensor Tensor)> tensors, long maxBytes)
    {
        var shards = new List<List<(string Name, Tensor Tensor)>> { new() };
        long size = 0, total = 0;
        foreach (var t in tensors)
        {
            long bytes = t.Tensor.numel() * t.Tensor.ElementSize;
            if (size > 0 && size + bytes > maxBytes)
            {
                shards.Add([]);
                size = 0;
            }

            shards[^1].Add(t);
            size += bytes;
            total += bytes;
        }

        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        if (shards.Count == 1)
        {
            Safetensors.Write(Path.Combine(directory, WeightsFile), shards[0].ToDictionary(t => t.Name, t => t.Tensor), metadata);
            return [WeightsFile];
        }

        var files = new List<string>();
        var weightMap = new JsonObject();
        for (int i = 0; i < shards.Count; i++)
        {
            string name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            Safetensors.Write(Path.Combine(directory, name), shards[i].ToDictionary(t => t.Name, t => t.Tensor), metadata);
            foreach (var (tensor, _) in shards[i]) weightMap[tensor] = name;
            files.Add(name);
        }

        var index = new JsonObject
        {
            ["metadata"] = new JsonObject { ["total_size"] = total },
            ["weight_map"] = new JsonObject(weightMap.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, kv.Value?.DeepClone()))),
        };
        Write(directory, IndexFile, index, files);
        return files;
    }

    private static void Write(string directory, string name, JsonObject json, List<string> files)
    {
        File.WriteAllText(Path.Combine(directory, name), json.ToJsonString(Indented));
        files.Add(name);
    }
}
