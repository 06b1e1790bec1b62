using System.Text.Json.Nodes;
using YingHub.Moe.Core.Checkpoints;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// A <see cref="LoraMixture"/>'s files, beside PEFT's: <c>adapter_model.safetensors</c> (every expert's
/// <c>base_model.model.&lt;module&gt;.experts.{i}.lora_A.weight</c> (r, in) and <c>.lora_B.weight</c> (out, r), the gate
/// rows <c>.gate.{i}.weight</c> (1, in) and, for a noisy gate, <c>.gate_noise.{i}.weight</c> (1, in); metadata
/// <c>format: pt</c>) and <c>adapter_config.json</c> (PEFT's LoRA keys with <c>peft_type</c> <c>LORA_MIXTURE</c>, which
/// PEFT itself does not know, plus <c>num_experts</c>, <c>num_experts_per_tok</c>, <c>noisy_gate</c> and
/// <c>router_aux_loss_coef</c>).
/// </summary>
public static class LoraMixtureFiles
{
    /// <summary>The config's <c>peft_type</c>.</summary>
    public const string PeftType = "LORA_MIXTURE";

    /// <summary>Writes <paramref name="mixture"/>'s two files into <paramref name="directory"/> (created when missing; other files stay), each atomically.</summary>
    public static void Save(LoraMixture mixture, string directory)
    {
        ArgumentNullException.ThrowIfNull(mixture);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var options = mixture.Options;
        Directory.CreateDirectory(directory);
        var tensors = mixture.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter, StringComparer.Ordinal);
        Safetensors.Write(Path.Combine(directory, LoraAdapterFiles.WeightsFile), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var config = LoraAdapterFiles.Config(PeftType, options.Lora, mixture.Layers.All(l => l.Target.InputMajor));
        config["num_experts"] = options.NumExperts;
        config["num_experts_per_tok"] = options.TopK;
        config["noisy_gate"] = options.NoisyGate;
        config["router_aux_loss_coef"] = options.BalanceLossCoefficient;
        LoraAdapterFiles.WriteConfig(Path.Combine(directory, LoraAdapterFiles.ConfigFile), config);
    }

    /// <summary>Attaches the mixture in <paramref name="directory"/> to <paramref name="model"/> as <paramref name="name"/>, inactive, every expert trainable.</summary>
    /// <exception cref="InvalidDataException">A file is missing or malformed, or a tensor is missing, unexpected or mis-shaped (the message names it).</exception>
    /// <exception cref="ArgumentException">The config's settings are invalid or its target modules do not fit the model.</exception>
    public static LoraMixture Load(nn.Module model, string directory, string name = "mixture")
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string configPath = Path.Combine(directory, LoraAdapterFiles.ConfigFile), weightsPath = Path.Combine(directory, LoraAdapterFiles.WeightsFile);
        if (!File.Exists(configPath)) throw new InvalidDataException($"'{directory}' has no {LoraAdapterFiles.ConfigFile}.");
        if (!File.Exists(weightsPath)) throw new InvalidDataException($"'{directory}' has no {LoraAdapterFiles.WeightsFile}.");
        var options = ReadConfig(configPath);
        var mixture = new LoraMixture(model, options, name);
        try
        {
            LoraAdapterFiles.CopyInto(mixture, weightsPath, mixture.TargetNames, $"r = {options.Lora.Rank}, {options.NumExperts} experts");
            return mixture;
        }
        catch
        {
            mixture.Dispose();
            throw;
        }
    }

    /// <summary>Reads a mixture's <c>adapter_config.json</c> into options.</summary>
    /// <exception cref="InvalidDataException">Not a mixture config, or a needed key is missing or has the wrong type.</exception>
    public static LoraMixtureOptions ReadConfig(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var root = LoraAdapterFiles.ReadJson(path);
        string peftType = LoraAdapterFiles.ReadKey(path, () => root["peft_type"]?.GetValue<string>()) ?? throw LoraAdapterFiles.Bad(path, "peft_type", "missing");
        if (peftType != PeftType) throw LoraAdapterFiles.Bad(path, "peft_type", $"'{peftType}', but a mixture needs {PeftType} (load a LORA adapter with LoraAdapter.Load)");
        var lora = LoraAdapterFiles.ReadLoraKeys(root, path);
        return LoraAdapterFiles.ReadKey(path, () => new LoraMixtureOptions
        {
            Lora = lora,
            NumExperts = root["num_experts"]?.GetValue<int>() ?? throw LoraAdapterFiles.Bad(path, "num_experts", "missing"),
            TopK = root["num_experts_per_tok"]?.GetValue<int>() ?? throw LoraAdapterFiles.Bad(path, "num_experts_per_tok", "missing"),
            NoisyGate = root["noisy_gate"]?.GetValue<bool>() ?? false,
            BalanceLossCoefficient = root["router_aux_loss_coef"]?.GetValue<double>() ?? 0,
        });
    }
}
