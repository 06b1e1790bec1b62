using System.Text.Json;
using System.Text.Json.Serialization;
using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Core.Interop;

/// <summary>The fields of a Hugging Face GPT-2 <c>config.json</c> that the architecture needs.</summary>
public sealed class Gpt2Config : IValidatableOptions
{
    /// <summary>Vocabulary size (50257 for OpenAI's GPT-2).</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; set; } = 50257;

    /// <summary>Context length.</summary>
    [JsonPropertyName("n_positions")] public int Positions { get; set; } = 1024;

    /// <summary>Model width.</summary>
    [JsonPropertyName("n_embd")] public int Embedding { get; set; } = 768;

    /// <summary>Blocks.</summary>
    [JsonPropertyName("n_layer")] public int Layers { get; set; } = 12;

    /// <summary>Attention heads.</summary>
    [JsonPropertyName("n_head")] public int Heads { get; set; } = 12;

    /// <summary>MLP width; null means 4 × <see cref="Embedding"/>.</summary>
    [JsonPropertyName("n_inner")] public int? Inner { get; set; }

    /// <summary>LayerNorm epsilon.</summary>
    [JsonPropertyName("layer_norm_epsilon")] public double LayerNormEpsilon { get; set; } = 1e-5;

    /// <summary>MLP activation; GPT-2 uses <c>gelu_new</c> (the tanh approximation).</summary>
    [JsonPropertyName("activation_function")] public string Activation { get; set; } = "gelu_new";

    /// <summary>Reads a <c>config.json</c>.</summary>
    /// <exception cref="InvalidDataException">The file is not a valid GPT-2 configuration; the message names the field.</exception>
    public static Gpt2Config Load(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"GPT-2 configuration '{path}' does not exist.", path);
        Gpt2Config config;
        try
        {
            config = JsonSerializer.Deserialize<Gpt2Config>(File.ReadAllText(path)) ?? throw new InvalidDataException($"'{path}' is empty.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{path}' is not a GPT-2 config.json: {ex.Message}", ex);
        }

        IReadOnlyList<OptionError> errors = config.GetValidationErrors();
        if (errors.Count > 0) throw new InvalidDataException($"'{path}': {string.Join(" ", errors.Select(e => e.Message))}");
        return config;
    }

    /// <summary>Every problem, each naming the <c>config.json</c> key, its value and the allowed range.</summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(VocabSize >= 1, "vocab_size", VocabSize, ">= 1");
        errors.Require(Positions >= 1, "n_positions", Positions, ">= 1");
        errors.Require(Layers >= 1, "n_layer", Layers, ">= 1");
        errors.Require(Heads >= 1 && Embedding >= 1 && Embedding % Heads == 0, "n_embd", Embedding, $"a positive multiple of n_head = {Heads}");
        errors.Require(Inner is null or >= 1, "n_inner", Inner, ">= 1, or null for 4 × n_embd");
        errors.Require(LayerNormEpsilon > 0, "layer_norm_epsilon", LayerNormEpsilon, "> 0");
        errors.Require(Activation is "gelu_new" or "gelu_pytorch_tanh" or "gelu", "activation_function", Activation, "gelu_new, gelu_pytorch_tanh or gelu");
        return errors;
    }
}
