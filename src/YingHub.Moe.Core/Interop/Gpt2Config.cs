using System.Text.Json;
using System.Text.Json.Serialization;

namespace YingHub.Moe.Core.Interop;

/// <summary>The fields of a Hugging Face GPT-2 <c>config.json</c> that the architecture needs.</summary>
public sealed class Gpt2Config
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

        string[] errors = config.Validate().ToArray();
        if (errors.Length > 0) throw new InvalidDataException($"'{path}': {string.Join(" ", errors)}");
        return config;
    }

    /// <summary>Every problem, naming the field, its value and the allowed range.</summary>
    public IEnumerable<string> Validate()
    {
        if (VocabSize < 1) yield return $"vocab_size = {VocabSize} must be at least 1.";
        if (Positions < 1) yield return $"n_positions = {Positions} must be at least 1.";
        if (Layers < 1) yield return $"n_layer = {Layers} must be at least 1.";
        if (Heads < 1 || Embedding < 1 || Embedding % Heads != 0) yield return $"n_embd = {Embedding} must be a positive multiple of n_head = {Heads}.";
        if (Inner is < 1) yield return $"n_inner = {Inner} must be at least 1 (or null).";
        if (!(LayerNormEpsilon > 0)) yield return $"layer_norm_epsilon = {LayerNormEpsilon} must be positive.";
        if (Activation is not ("gelu_new" or "gelu_pytorch_tanh" or "gelu")) yield return $"activation_function = '{Activation}' is not one of gelu_new, gelu_pytorch_tanh, gelu.";
    }
}
