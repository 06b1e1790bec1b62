using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Interop;

/// <summary>
/// Loads a Hugging Face Mixtral directory (<c>config.json</c> with <c>model_type</c> <c>mixtral</c>; weights in one
/// <c>model.safetensors</c> or sharded with <c>model.safetensors.index.json</c>; per-expert <c>w1</c>/<c>w2</c>/<c>w3</c>
/// or Transformers 5's fused <c>mlp.experts.gate_up_proj</c>/<c>down_proj</c>; any float dtype, converted to float32)
/// into a <see cref="MoeForCausalLM"/> with the <c>mixtral</c> preset's choices and the file's sizes, plus its tokenizer
/// (<see cref="HfTokenizerFile.Load"/>). <see cref="MixtralExport"/> writes such directories.
/// </summary>
public static class MixtralImport
{
    /// <summary>Whether <paramref name="directory"/> looks like a Hugging Face model directory (a <c>config.json</c> with a <c>model_type</c>), as opposed to a library checkpoint.</summary>
    public static bool IsHuggingFaceDirectory(string directory)
    {
        string path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) return false;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) is JsonObject o && o.ContainsKey("model_type");
        }
        catch (JsonException)
        {
            return false;
        }
    }

    /// <summary>The library's options for the Mixtral directory's <c>config.json</c>.</summary>
    /// <exception cref="FileNotFoundException">No <c>config.json</c>.</exception>
    /// <exception cref="InvalidDataException">Not a Mixtral configuration, or one the library cannot run; the message names the key.</exception>
    public static MoeModelOptions ReadOptions(string directory)
    {
        string path = Path.Combine(directory, "config.json");
        if (!File.Exists(path)) throw new FileNotFoundException($"No Hugging Face model in '{directory}': 'config.json' is missing.", path);
        JsonObject config;
        try
        {
            config = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"'{path}' is not a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {ex.Message}", ex);
        }

        return MixtralLayout.FromConfig(config, path);
    }

    /// <summary>Builds the model of the Mixtral directory and loads every weight (each must be there with its shape; nothing else may be).</summary>
    /// <exception cref="FileNotFoundException">No config or no weights.</exception>
    /// <exception cref="InvalidDataException">Another <c>model_type</c>, a missing, mis-shaped or unexpected tensor, or a NaN; the message names it.</exception>
    public static MoeForCausalLM Load(string directory)
    {
        var options = ReadOptions(directory);
        MoeForCausalLM model;
        using (WeightInit.Skip()) model = new MoeForCausalLM(options); // outside the scope below: it would dispose the new parameters
        try
        {
            using var scope = torch.NewDisposeScope();
            var (tensors, source) = ReadWeights(directory);
            var state = MixtralWeights.FromHuggingFace(tensors, options, source);
            var used = UsedNames(tensors.Keys, options);
            var unexpected = tensors.Keys.Where(k => !used.Contains(k) && !k.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
            if (unexpected.Count > 0)
                throw new InvalidDataException($"'{source}': tensors {string.Join(", ", unexpected.Take(8).Select(k => $"'{k}'"))}{(unexpected.Count > 8 ? $" and {unexpected.Count - 8} more" : "")} are not part of a Mixtral model with this configuration.");
            var report = MoeCheckpoint.LoadState(model, state, source, strict: false);
            var missing = report.Missing.Where(k => !k.Contains(".utilization.", StringComparison.Ordinal)).ToList(); // the routing window starts empty
            if (missing.Count > 0 || report.Unexpected.Count > 0 || report.Mismatched.Count > 0)
                throw new InvalidDataException($"'{source}' does not fill the model: {report}.");
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The tokenizer of the directory (<see cref="HfTokenizerFile.Load"/>).</summary>
    public static ITextTokenizer LoadTokenizer(string directory) => HfTokenizerFile.Load(directory);

    /// <summary>Every tensor of the directory by name (CPU, the file's dtype), from one file or the shards its index names.</summary>
    private static (Dictionary<string, Tensor> Tensors, string Source) ReadWeights(string directory)
    {
        string single = Path.Combine(directory, MixtralExport.WeightsFile), index = Path.Combine(directory, MixtralExport.IndexFile);
        if (File.Exists(index))
        {
            JsonObject map;
            try
            {
                map = JsonNode.Parse(File.ReadAllText(index))?["weight_map"] as JsonObject ?? throw new InvalidDataException($"'{index}' has no weight_map.");
            }
            catch (JsonException ex)
            {
                throw new InvalidDataException($"'{index}' is not valid JSON: {ex.Message}", ex);
            }

            var all = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            foreach (string shard in map.Select(kv => kv.Value!.GetValue<string>()).Distinct(StringComparer.Ordinal))
            {
                if (shard.Contains('/') || shard.Contains('\\') || shard.Contains(".."))
                    throw new InvalidDataException($"'{index}' names shard '{shard}', which is not a file name in the directory.");
                string path = Path.Combine(directory, shard);
                if (!File.Exists(path)) throw new FileNotFoundException($"'{index}' names shard '{shard}', which is missing.", path);
                foreach (var (name, t) in Safetensors.Read(path))
                {
                    if (map[name]?.GetValue<string>() != shard)
                        throw new InvalidDataException($"'{path}' holds tensor '{name}', which the index does not place there.");
                    all[name] = t;
                }
            }

            var absent = map.Select(kv => kv.Key).Where(k => !all.ContainsKey(k)).ToList();
            if (absent.Count > 0) throw new InvalidDataException($"'{index}' lists '{absent[0]}', which no shard holds.");
            return (all, index);
        }

        if (!File.Exists(single)) throw new FileNotFoundException($"No weights in '{directory}': neither '{MixtralExport.WeightsFile}' nor '{MixtralExport.IndexFile}'.", single);
        return (Safetensors.Read(single), single);
    }

    /// <summary>The Hugging Face names a model of <paramref name="o"/> reads (per layer the classic or the fused expert names, as present).</summary>
    private static HashSet<string> UsedNames(IEnumerable<string> present, MoeModelOptions o)
    {
        var names = new HashSet<string>(StringComparer.Ordinal) { "model.embed_tokens.weight", "model.norm.weight" };
        if (!o.TieWordEmbeddings) names.Add("lm_head.weight");
        var have = present.ToHashSet(StringComparer.Ordinal);
        for (int i = 0; i < o.NumLayers; i++)
        {
            foreach (string s in new[] { "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight" })
                names.Add(MixtralLayout.Layer(i, s));
            if (have.Contains(MixtralLayout.Layer(i, "mlp.experts.gate_up_proj")))
            {
                names.UnionWith([MixtralLayout.Layer(i, "mlp.gate.weight"), MixtralLayout.Layer(i, "mlp.experts.gate_up_proj"), MixtralLayout.Layer(i, "mlp.experts.down_proj")]);
                continue;
            }

            names.Add(MixtralLayout.Layer(i, "block_sparse_moe.gate.weight"));
            for (int j = 0; j < o.NumExperts; j++) names.UnionWith(new[] { "w1", "w2", "w3" }.Select(w => MixtralLayout.Expert(i, j, w)));
        }

        return names;
    }
}
