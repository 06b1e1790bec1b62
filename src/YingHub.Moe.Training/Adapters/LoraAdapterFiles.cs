using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// PEFT's adapter files: <c>adapter_model.safetensors</c> (tensors <c>base_model.model.&lt;module&gt;.lora_A.weight</c>
/// (r, in) and <c>.lora_B.weight</c> (out, r), metadata <c>format: pt</c>) and <c>adapter_config.json</c> (PEFT's
/// <c>LoraConfig</c> keys).
/// </summary>
public static class LoraAdapterFiles
{
    /// <summary>The weights file's name.</summary>
    public const string WeightsFile = "adapter_model.safetensors";

    /// <summary>The config file's name.</summary>
    public const string ConfigFile = "adapter_config.json";

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>
    /// Writes <paramref name="adapter"/>'s files into <paramref name="directory"/> (created when missing; other files
    /// there are left alone), each atomically. <c>fan_in_fan_out</c> is true when every target stores its weight
    /// (in, out) (attention projections, GPT-2's Conv1D), as PEFT's setting for GPT-2; the A and B shapes do not depend on it.
    /// </summary>
    public static void Save(LoraAdapter adapter, string directory)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var options = adapter.Options;
        Directory.CreateDirectory(directory);
        var tensors = adapter.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter, StringComparer.Ordinal);
        Safetensors.Write(Path.Combine(directory, WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var config = Config("LORA", options, adapter.Layers.All(l => l.Target.InputMajor));
        WriteConfig(Path.Combine(directory, ConfigFile), config);
    }

    /// <summary>PEFT's <c>LoraConfig</c> keys for <paramref name="options"/> under <paramref name="peftType"/>.</summary>
    internal static JsonObject Config(string peftType, LoraOptions options, bool fanInFanOut) => new()
    {
        ["peft_type"] = peftType,
        ["task_type"] = "CAUSAL_LM",
        ["base_model_name_or_path"] = options.BaseModelNameOrPath,
        ["r"] = options.Rank,
        ["lora_alpha"] = options.Alpha,
        ["lora_dropout"] = options.Dropout,
        ["target_modules"] = new JsonArray(options.TargetModules.Select(t => (JsonNode?)t).ToArray()),
        ["fan_in_fan_out"] = fanInFanOut,
        ["bias"] = "none",
        ["use_rslora"] = false,
        ["modules_to_save"] = null,
        ["init_lora_weights"] = true,
        ["inference_mode"] = false,
    };

    /// <summary>Writes <paramref name="config"/> indented, atomically.</summary>
    internal static void WriteConfig(string path, JsonObject config) => AtomicFile.WriteAllText(path, config.ToJsonString(Indented));

    /// <summary>Attaches the adapter in <paramref name="directory"/> to <paramref name="model"/> as <paramref name="name"/>, inactive.</summary>
    /// <exception cref="InvalidDataException">A file is missing or malformed, or a tensor is missing, unexpected or mis-shaped (the message names it).</exception>
    /// <exception cref="ArgumentException">The config's target modules do not fit the model (see <see cref="LoraAdapter"/>'s constructor).</exception>
    public static LoraAdapter Load(nn.Module model, string directory, string name = "default")
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string configPath = Path.Combine(directory, ConfigFile), weightsPath = Path.Combine(directory, WeightsFile);
        if (!File.Exists(configPath)) throw new InvalidDataException($"'{directory}' has no {ConfigFile}.");
        if (!File.Exists(weightsPath)) throw new InvalidDataException($"'{directory}' has no {WeightsFile}.");
        var options = ReadConfig(configPath);
        var adapter = new LoraAdapter(model, options, name);
        try
        {
            CopyInto(adapter, weightsPath, adapter.TargetNames, $"r = {options.Rank}");
            return adapter;
        }
        catch
        {
            adapter.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies every tensor of the safetensors file <paramref name="weightsPath"/> into the parameter of
    /// <paramref name="module"/> of the same name, checking that the names match both ways and the shapes agree.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing, unexpected or mis-shaped (the message names it, the targets and <paramref name="hint"/>).</exception>
    internal static void CopyInto(nn.Module module, string weightsPath, IReadOnlyList<string> targets, string hint)
    {
        using var scope = torch.NewDisposeScope();
        var file = Safetensors.Read(weightsPath);
        var expected = module.named_parameters().ToDictionary(p => p.name, p => p.parameter, StringComparer.Ordinal);
        if (file.Keys.FirstOrDefault(k => !expected.ContainsKey(k)) is { } unexpected)
            throw new InvalidDataException($"'{weightsPath}': tensor '{unexpected}' belongs to no target of this model; targets: {string.Join(", ", targets)}.");
        using var noGrad = torch.no_grad();
        foreach (var (key, parameter) in expected)
        {
            if (!file.TryGetValue(key, out var t)) throw new InvalidDataException($"'{weightsPath}' lacks tensor '{key}'.");
            if (!t.shape.SequenceEqual(parameter.shape))
                throw new InvalidDataException($"'{weightsPath}': tensor '{key}' has shape [{string.Join(", ", t.shape)}], but this model's target needs [{string.Join(", ", parameter.shape)}] ({hint}).");
            parameter.copy_(t);
        }
    }

    /// <summary>Reads PEFT's <c>adapter_config.json</c> into options.</summary>
    /// <exception cref="InvalidDataException">Not a LoRA config, a needed key is missing or has the wrong type, or it asks for a variant not supported (rsLoRA, trained biases, regex targets).</exception>
    public static LoraOptions ReadConfig(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var root = ReadJson(path);
        string peftType = ReadKey(path, () => root["peft_type"]?.GetValue<string>()) ?? throw Bad(path, "peft_type", "missing");
        if (peftType == LoraMixtureFiles.PeftType) throw Bad(path, "peft_type", $"'{peftType}': a mixture of LoRA experts; load it with LoraMixture.Load");
        if (peftType != "LORA") throw Bad(path, "peft_type", $"'{peftType}', but only LORA is supported");
        return ReadLoraKeys(root, path);
    }

    /// <summary>The JSON object in <paramref name="path"/>.</summary>
    /// <exception cref="InvalidDataException">Not valid JSON, or not an object.</exception>
    internal static JsonObject ReadJson(string path)
    {
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"'{path}' is not a JSON object.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {ex.Message}", ex);
        }
    }

    /// <summary>Reads a key, turning a wrong JSON type into an <see cref="InvalidDataException"/> naming the file.</summary>
    internal static T ReadKey<T>(string path, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"'{path}': a key has the wrong type ({ex.Message}).", ex);
        }
    }

    /// <summary>PEFT's LoRA keys of a config (<c>r</c>, <c>lora_alpha</c>, <c>lora_dropout</c>, <c>target_modules</c>, ...), whatever its <c>peft_type</c>.</summary>
    /// <exception cref="InvalidDataException">A needed key is missing or has the wrong type, or a variant not supported (rsLoRA, trained biases, regex targets).</exception>
    internal static LoraOptions ReadLoraKeys(JsonObject root, string path)
    {
        try
        {
            if (root["use_rslora"]?.GetValue<bool>() == true) throw Bad(path, "use_rslora", "true, but rank-stabilised LoRA is not supported");
            if (root["bias"]?.GetValue<string>() is { } bias && bias != "none") throw Bad(path, "bias", $"'{bias}', but only 'none' is supported");
            var targets = root["target_modules"] switch
            {
                JsonArray array => array.Select(n => n?.GetValue<string>() ?? throw Bad(path, "target_modules", "holds a null")).ToList(),
                null => throw Bad(path, "target_modules", "missing"),
                _ => throw Bad(path, "target_modules", "a string (a regular expression), but only a list of names is supported"),
            };
            return new LoraOptions
            {
                Rank = root["r"]?.GetValue<int>() ?? throw Bad(path, "r", "missing"),
                Alpha = root["lora_alpha"]?.GetValue<double>() ?? throw Bad(path, "lora_alpha", "missing"),
                Dropout = root["lora_dropout"]?.GetValue<double>() ?? 0,
                TargetModules = targets,
                BaseModelNameOrPath = root["base_model_name_or_path"]?.GetValue<string>(),
            };
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"'{path}': a key has the wrong type ({ex.Message}).", ex);
        }
    }

    internal static InvalidDataException Bad(string path, string key, string why) => new($"'{path}': {key} is {why}.");
}
