using System.Globalization;
using System.Text.Json.Nodes;
using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Core.Interop;

/// <summary>
/// Hugging Face's Mixtral layout (<c>MixtralForCausalLM</c>, <c>models/mixtral/modeling_mixtral.py</c>): which of the
/// library's models it can express, its <c>config.json</c> both ways, and its tensor names. The exporter and the
/// importer share this one table. Tensor layout is (out, in) as <c>nn.Linear</c> stores it; the library keeps its
/// projections input-major, so both directions transpose.
/// </summary>
public static class MixtralLayout
{
    /// <summary>The <c>model_type</c> of the layout.</summary>
    public const string ModelType = "mixtral";

    /// <summary>The architecture class name in <c>config.json</c>.</summary>
    public const string Architecture = "MixtralForCausalLM";

    /// <summary>
    /// Everything in <paramref name="options"/> the Mixtral layout cannot express, one phrase each naming the option
    /// and what Mixtral has instead; empty when the model exports exactly. Training-only settings (dropout, capacity in
    /// training, z-loss, label smoothing, init) are not architecture and are not listed.
    /// </summary>
    public static IReadOnlyList<string> Misfits(MoeModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var misfits = new List<string>();
        void Need(bool ok, string what) { if (!ok) misfits.Add(what); }
        Need(options.Positions == PositionEncoding.Rope, $"learned positions (position_encoding {options.Positions}; Mixtral has RoPE)");
        Need(options.Norm == NormKind.RmsNorm, $"{options.Norm} (norm_type; Mixtral has RMSNorm)");
        Need(options.NormPosition == NormPosition.Pre, "post-norm (norm_position Post; Mixtral is pre-norm)");
        Need(!options.HasQkvBias, "query/key/value biases (Mixtral has none)");
        Need(!options.HasAttentionOutputBias, "an attention output bias (Mixtral has none)");
        Need(!options.Bias, "expert and router biases (bias true; Mixtral has none)");
        Need(!options.LmHeadBias, "an LM head bias (Mixtral has none)");
        Need(options.AttentionScale == AttentionScaleRule.HeadDim, "the 1/sqrt(hidden size) attention scale (attention_scale HiddenSize; Mixtral uses 1/sqrt(head_dim))");
        Need(options.Activation == ExpertActivation.SwiGlu, $"{options.Activation} experts (hidden_act; Mixtral's experts are SwiGLU)");
        Need(options.DeepExperts == 0, $"deep experts (num_deep_experts {options.DeepExperts}; Mixtral's experts have one hidden layer)");
        Need(options.Router == RouterKind.TopK, "the noisy router (router_type NoisyTopK; Mixtral's gate is one linear layer)");
        Need(options.NormalizeTopKWeights, "unnormalised top-k weights (norm_topk_prob false; Mixtral renormalises them)");
        Need(!options.SharedExpert, "a shared expert (Mixtral has none)");
        Need(options.MoeEvery == 1, $"dense layers (moe_layer_frequency {options.MoeEvery}; every Mixtral layer is MoE)");
        Need(!options.CapacityBinds(training: false), "expert capacity in evaluation (capacity_in_eval; Mixtral is dropless)");
        return misfits;
    }

    /// <summary>The Mixtral <c>config.json</c> of <paramref name="options"/> (check <see cref="Misfits"/> first).</summary>
    /// <param name="options">The architecture.</param>
    /// <param name="endOfText">The tokenizer's end-of-text id, or null when it has none (then no bos/eos ids are written as numbers).</param>
    public static JsonObject Config(MoeModelOptions options, int? endOfText)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new JsonObject
        {
            ["architectures"] = new JsonArray(Architecture),
            ["model_type"] = ModelType,
            ["attention_dropout"] = options.AttentionDropout,
            ["bos_token_id"] = endOfText,
            ["eos_token_id"] = endOfText,
            ["head_dim"] = options.HeadDim,
            ["hidden_act"] = "silu",
            ["hidden_size"] = options.HiddenSize,
            ["initializer_range"] = options.InitStd,
            ["intermediate_size"] = options.ExpertWidth,
            ["max_position_embeddings"] = options.ContextLength,
            ["num_attention_heads"] = options.NumHeads,
            ["num_experts_per_tok"] = options.TopK,
            ["num_hidden_layers"] = options.NumLayers,
            ["num_key_value_heads"] = options.KeyValueHeads,
            ["num_local_experts"] = options.NumExperts,
            ["output_router_logits"] = false,
            ["rms_norm_eps"] = options.NormEpsilon,
            ["rope_theta"] = options.RopeTheta,
            // HF's load_balancing_loss_func is top_k at perfect balance, the library's 1: the same weight needs coef / k there
            ["router_aux_loss_coef"] = options.LoadBalancingCoef / options.TopK,
            ["router_jitter_noise"] = 0.0,
            ["sliding_window"] = null,
            ["tie_word_embeddings"] = options.TieWordEmbeddings,
            ["torch_dtype"] = "float32",
            ["use_cache"] = true,
            ["vocab_size"] = options.VocabSize,
        };
    }

    /// <summary>
    /// The library's options for a Mixtral <c>config.json</c>: the <c>mixtral</c> preset's choices with the file's sizes.
    /// </summary>
    /// <exception cref="InvalidDataException">
    /// <c>model_type</c> is not <c>mixtral</c>, a size is missing or not a number, or something the library cannot run
    /// (sliding-window attention, router jitter, a <c>head_dim</c> other than hidden_size / num_attention_heads); the
    /// message names the key and its value.
    /// </exception>
    public static MoeModelOptions FromConfig(JsonObject config, string source)
    {
        ArgumentNullException.ThrowIfNull(config);
        string? type = config["model_type"]?.GetValue<string>();
        if (type != ModelType)
            throw new InvalidDataException($"'{source}': model_type is '{type ?? "(missing)"}', not '{ModelType}'; only Mixtral (MixtralForCausalLM) directories can be imported.");
        int Int(string key) => config[key] is JsonValue v && v.TryGetValue(out int i) ? i
            : throw new InvalidDataException($"'{source}': '{key}' is {(config[key]?.ToJsonString() ?? "missing")}; an integer is needed.");
        double Number(string key, double fallback) => config[key] switch
        {
            null => fallback,
            JsonValue v when v.TryGetValue(out double d) => d,
            var other => throw new InvalidDataException($"'{source}': '{key}' is {other.ToJsonString()}; a number is needed."),
        };

        var o = MoePresets.Get("mixtral");
        o.VocabSize = Int("vocab_size");
        o.HiddenSize = Int("hidden_size");
        o.IntermediateSize = Int("intermediate_size");
        o.NumLayers = Int("num_hidden_layers");
        o.NumHeads = Int("num_attention_heads");
        o.NumKeyValueHeads = config["num_key_value_heads"] is null ? o.NumHeads : Int("num_key_value_heads");
        o.NumExperts = Int("num_local_experts");
        o.TopK = Int("num_experts_per_tok");
        o.ContextLength = Int("max_position_embeddings");
        o.NormEpsilon = Number("rms_norm_eps", 1e-5);
        o.RopeTheta = Number("rope_theta", 1e6);
        o.InitStd = Number("initializer_range", 0.02);
        o.AttentionDropout = Number("attention_dropout", 0);
        o.LoadBalancingCoef = Number("router_aux_loss_coef", 0.001) * o.TopK;
        o.TieWordEmbeddings = config["tie_word_embeddings"]?.GetValue<bool>() ?? false;
        if (config["head_dim"] is not null && o.NumHeads > 0 && Int("head_dim") != o.HiddenSize / o.NumHeads)
            throw new InvalidDataException($"'{source}': head_dim {Int("head_dim")} differs from hidden_size / num_attention_heads = {o.HiddenSize / o.NumHeads}, which the library cannot run.");
        if (config["sliding_window"] is JsonValue window && window.TryGetValue(out int w) && w < o.ContextLength)
            throw new InvalidDataException($"'{source}': sliding_window {w} is shorter than max_position_embeddings {o.ContextLength}; the library has no sliding-window attention.");
        if (Number("router_jitter_noise", 0) != 0)
            throw new InvalidDataException($"'{source}': router_jitter_noise {Number("router_jitter_noise", 0).ToString(CultureInfo.InvariantCulture)} is not supported (the library's router has no jitter).");
        var errors = o.GetValidationErrors();
        if (errors.Count > 0) throw new InvalidDataException($"'{source}': the configuration gives invalid options: {string.Join(" ", errors.Select(e => e.Message))}");
        return o;
    }

    /// <summary>Hugging Face's name of a decoder layer's tensor: <c>model.layers.{layer}.{suffix}</c>.</summary>
    public static string Layer(int layer, string suffix) => $"model.layers.{layer}.{suffix}";

    /// <summary>Hugging Face's name of expert <paramref name="expert"/>'s projection (<c>w1</c> gate, <c>w2</c> down, <c>w3</c> up).</summary>
    public static string Expert(int layer, int expert, string projection) => Layer(layer, $"block_sparse_moe.experts.{expert}.{projection}.weight");
}
