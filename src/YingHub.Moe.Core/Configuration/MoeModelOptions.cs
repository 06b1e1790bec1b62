using System.Text.Json.Serialization;

namespace YingHub.Moe.Core.Configuration;

/// <summary>How token positions enter the model.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<PositionEncoding>))]
public enum PositionEncoding
{
    /// <summary>A learned absolute position embedding added to the token embedding (GPT-2, makeMoE, YingHub-v2).</summary>
    Learned,

    /// <summary>Rotary position embedding applied to queries and keys (OpenMoE, Llama, Mixtral).</summary>
    Rope,
}

/// <summary>The normalisation layer used before attention, before the feed-forward block and before the LM head.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<NormKind>))]
public enum NormKind
{
    /// <summary>LayerNorm with a learned scale and shift.</summary>
    LayerNorm,

    /// <summary>RMSNorm with a learned scale.</summary>
    RmsNorm,
}

/// <summary>The non-linearity of feed-forward experts.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ExpertActivation>))]
public enum ExpertActivation
{
    /// <summary>ReLU (makeMoE).</summary>
    Relu,

    /// <summary>GELU, tanh approximation (GPT-2, YingHub-v2).</summary>
    Gelu,

    /// <summary>SwiGLU: <c>down(silu(gate(x)) * up(x))</c> (Llama, Mixtral, OpenMoE).</summary>
    SwiGlu,
}

/// <summary>How the router picks experts.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<RouterKind>))]
public enum RouterKind
{
    /// <summary>Top-k of the router logits; the gate weights are a softmax over the k selected logits.</summary>
    TopK,

    /// <summary>
    /// As <see cref="TopK"/>, but in training mode <c>N(0,1) * softplus(W_noise x) * temperature</c> is added to the
    /// logits first (Shazeer et al. 2017; YingHub-v2). No noise in evaluation mode (makeMoE adds it there too, which
    /// makes its evaluation loss random; the makemoe-exact preset keeps the library's rule, see docs/presets.md).
    /// </summary>
    NoisyTopK,
}

/// <summary>Weight initialisation scheme for linear and embedding weights (biases start at zero).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<InitScheme>))]
public enum InitScheme
{
    /// <summary>normal(0, <see cref="MoeModelOptions.InitStd"/>) (GPT-2, nanoGPT).</summary>
    Normal,

    /// <summary>Kaiming (He) normal with fan-in, as makeMoE's <c>kaiming_init_weights</c>.</summary>
    KaimingNormal,

    /// <summary>Xavier (Glorot) uniform.</summary>
    Xavier,
}

/// <summary>
/// How the projections that write into the residual stream start: the attention output projection and the last
/// layer of every expert and dense feed-forward block.
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<ResidualInitScheme>))]
public enum ResidualInitScheme
{
    /// <summary>The scheme's draw divided by √(2 × layers), so the stream's variance at init does not grow with depth (GPT-2, Megatron-LM's output-layer init).</summary>
    Scaled,

    /// <summary>Zero: every block starts as the identity and its projection learns from the first step (modded-nanogpt's zero-initialised projections).</summary>
    Zero,

    /// <summary>The scheme's draw, as for any other weight (makeMoE's <c>kaiming_init_weights</c>).</summary>
    Unscaled,
}

/// <summary>
/// The architecture of a sparse Mixture-of-Experts decoder-only language model. JSON keys follow Hugging Face
/// <c>config.json</c> names where one exists. <see cref="GetValidationErrors"/> lists every bad field (constructors
/// throw them through <see cref="OptionChecks.ThrowIfInvalid"/>).
/// </summary>
public sealed partial class MoeModelOptions
{
    /// <summary>Number of token ids, [1, 10,000,000].</summary>
    [JsonPropertyName("vocab_size")] public int VocabSize { get; set; } = 65;

    /// <summary>Context length T (maximum positions), [1, 1,048,576].</summary>
    [JsonPropertyName("max_position_embeddings")] public int ContextLength { get; set; } = 64;

    /// <summary>Model width C (n_embd), a positive multiple of <see cref="NumHeads"/>.</summary>
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; set; } = 128;

    /// <summary>Attention heads nh, [1, HiddenSize].</summary>
    [JsonPropertyName("num_attention_heads")] public int NumHeads { get; set; } = 4;

    /// <summary>
    /// Key/value heads nkv for grouped-query attention (Ainslie et al. 2023; Llama 2 70B, Mistral, Mixtral): keys and
    /// values get nkv heads, each shared by the NumHeads / nkv query heads of its group (query head h reads key/value
    /// head h / (NumHeads / nkv), as Hugging Face's <c>repeat_kv</c>), so the KV cache holds nkv heads. A divisor of
    /// <see cref="NumHeads"/>; null (the default) means <see cref="NumHeads"/> (multi-head attention).
    /// </summary>
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; set; }

    /// <summary>Decoder layers, [1, 1024].</summary>
    [JsonPropertyName("num_hidden_layers")] public int NumLayers { get; set; } = 4;

    /// <summary>Dropout on residual branches and expert outputs, and on embeddings unless <see cref="EmbeddingDropout"/> is set, [0, 1).</summary>
    [JsonPropertyName("hidden_dropout")] public double Dropout { get; set; }

    /// <summary>
    /// Dropout on the input embeddings (Hugging Face GPT-2's <c>embd_pdrop</c>), [0, 1); null (the default) uses
    /// <see cref="Dropout"/>. makeMoE has none, so its preset sets 0.
    /// </summary>
    [JsonPropertyName("embedding_dropout")] public double? EmbeddingDropout { get; set; }

    /// <summary>Dropout on attention probabilities, [0, 1).</summary>
    [JsonPropertyName("attention_dropout")] public double AttentionDropout { get; set; }

    /// <summary>Stochastic depth: probability of dropping a whole residual branch per sample in training, [0, 1).</summary>
    [JsonPropertyName("drop_path_rate")] public double StochasticDepth { get; set; }

    /// <summary>Position encoding.</summary>
    [JsonPropertyName("position_encoding")] public PositionEncoding Positions { get; set; } = PositionEncoding.Learned;

    /// <summary>RoPE base θ (used with <see cref="PositionEncoding.Rope"/>), &gt; 0.</summary>
    [JsonPropertyName("rope_theta")] public double RopeTheta { get; set; } = 10000;

    /// <summary>Share the token embedding matrix with the LM head.</summary>
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; set; }

    /// <summary>Normalisation layer kind.</summary>
    [JsonPropertyName("norm_type")] public NormKind Norm { get; set; } = NormKind.LayerNorm;

    /// <summary>Normalisation epsilon, (0, 0.1].</summary>
    [JsonPropertyName("norm_eps")] public double NormEpsilon { get; set; } = 1e-5;

    /// <summary>
    /// Whether linear layers have a bias: experts, dense FFNs, the router (and its noise projection), and the attention
    /// projections unless <see cref="AttentionQkvBias"/> or <see cref="AttentionOutputBias"/> say otherwise. The LM
    /// head follows <see cref="LmHeadBias"/> instead.
    /// </summary>
    [JsonPropertyName("bias")] public bool Bias { get; set; } = true;

    /// <summary>
    /// Whether the query, key and value projections have a bias; null (the default) follows <see cref="Bias"/>.
    /// makeMoE and YingHub-v2 have none (<c>nn.Linear(n_embd, head_size, bias=False)</c>).
    /// </summary>
    [JsonPropertyName("attention_qkv_bias")] public bool? AttentionQkvBias { get; set; }

    /// <summary>Whether the attention output projection has a bias; null (the default) follows <see cref="Bias"/>.</summary>
    [JsonPropertyName("attention_output_bias")] public bool? AttentionOutputBias { get; set; }

    /// <summary>
    /// Whether the LM head has a bias (false by default, as GPT-2 and Mixtral; makeMoE's <c>nn.Linear(n_embd,
    /// vocab_size)</c> has one). Must be false with <see cref="TieWordEmbeddings"/>: a tied head has no bias of its own.
    /// </summary>
    [JsonPropertyName("lm_head_bias")] public bool LmHeadBias { get; set; }

    /// <summary>How attention scores are scaled: 1/√(head dim) (the default) or makeMoE's 1/√(hidden size).</summary>
    [JsonPropertyName("attention_scale")] public AttentionScaleRule AttentionScale { get; set; } = AttentionScaleRule.HeadDim;

    /// <summary>Pre-norm (the default, <c>x + f(norm(x))</c>) or post-norm (<c>norm(x + f(x))</c>).</summary>
    [JsonPropertyName("norm_position")] public NormPosition NormPosition { get; set; } = NormPosition.Pre;

    /// <summary>Experts per MoE layer E, [1, 1024].</summary>
    [JsonPropertyName("num_local_experts")] public int NumExperts { get; set; } = 4;

    /// <summary>Experts each token is routed to, k in [1, NumExperts]; can be changed at run time on the model.</summary>
    [JsonPropertyName("num_experts_per_tok")] public int TopK { get; set; } = 2;

    /// <summary>Expert hidden width as a multiple of <see cref="HiddenSize"/> (hidden = m * C), [1, 64].</summary>
    [JsonPropertyName("expert_multiplier")] public int ExpertMultiplier { get; set; } = 4;

    /// <summary>
    /// Expert hidden width H (Hugging Face's <c>intermediate_size</c>), [1, 1,048,576]; null (the default) means
    /// <see cref="ExpertMultiplier"/> × <see cref="HiddenSize"/>. Set it for widths that are not a whole multiple of the
    /// model width (Mixtral 8x7B: 14336 = 3.5 × 4096). Dense layers and the shared expert keep <see cref="DenseMultiplier"/>.
    /// </summary>
    [JsonPropertyName("intermediate_size")] public int? IntermediateSize { get; set; }

    /// <summary>How many experts of each MoE layer (the first ones) are deep (two hidden layers), [0, NumExperts].</summary>
    [JsonPropertyName("num_deep_experts")] public int DeepExperts { get; set; }

    /// <summary>Expert non-linearity.</summary>
    [JsonPropertyName("hidden_act")] public ExpertActivation Activation { get; set; } = ExpertActivation.Gelu;

    /// <summary>
    /// Gate weights of the k selected experts: a softmax over their logits, summing to 1 (true; Mixtral), or their
    /// probabilities under the softmax over all experts (false; Switch Transformer, megablocks). With k = 1 the first
    /// is always 1, so the router learns only from the auxiliary losses: use false for Switch-style top-1 routing.
    /// </summary>
    [JsonPropertyName("norm_topk_prob")] public bool NormalizeTopKWeights { get; set; } = true;

    /// <summary>Router kind.</summary>
    [JsonPropertyName("router_type")] public RouterKind Router { get; set; } = RouterKind.TopK;

    /// <summary>Lower clamp of the noisy router's learnable noise temperature, &gt; 0.</summary>
    [JsonPropertyName("router_noise_min_temperature")] public double NoiseTemperatureMin { get; set; } = 0.1;

    /// <summary>Upper clamp of the noisy router's learnable noise temperature, ≥ the lower clamp.</summary>
    [JsonPropertyName("router_noise_max_temperature")] public double NoiseTemperatureMax { get; set; } = 2.0;

    /// <summary>
    /// Expert capacity factor, (0, 1024]: an expert keeps at most factor · N · k / E assignments of the N tokens of a
    /// forward (rounded by <see cref="CapacityRounding"/>, ranked by <see cref="CapacityRanking"/>); the rest of its
    /// assignments contribute nothing and the residual carries those tokens. Binds in training, and in evaluation too
    /// with <see cref="CapacityInEvaluation"/>. Either ranking keeps the model causal: a token is never dropped because
    /// of a later position of its own sequence. Null means dropless (no capacity).
    /// </summary>
    [JsonPropertyName("capacity_factor")] public double? CapacityFactor { get; set; }

    /// <summary>
    /// Whether capacity also binds in evaluation mode (makeMoE: yes). Off by default, and then evaluation and decoding
    /// are dropless, so a KV-cached decoding step gives the logits of a full forward. On, a token's output depends on
    /// how many tokens share its forward (the capacity is computed from them), so cached decoding cannot equal a full
    /// forward: the model refuses a KV cache (<see cref="Modules.MoeForCausalLM.SupportsCachedDecoding"/>) and
    /// <see cref="Generation.TokenGenerator"/> recomputes the window for every token instead, as makeMoE's
    /// <c>generate</c> does. No effect without <see cref="CapacityFactor"/>.
    /// </summary>
    [JsonPropertyName("capacity_in_eval")] public bool CapacityInEvaluation { get; set; }

    /// <summary>Rounding of the capacity: up and at least 1 (the default) or makeMoE's down (<c>int()</c>), which can give 0.</summary>
    [JsonPropertyName("capacity_rounding")] public CapacityRoundingRule CapacityRounding { get; set; } = CapacityRoundingRule.Ceil;

    /// <summary>
    /// Which assignments win when an expert is over capacity: earlier sequence positions across the batch (the default)
    /// or makeMoE's first come, first served in flat token order b·T + t.
    /// </summary>
    [JsonPropertyName("capacity_ranking")] public CapacityRankingRule CapacityRanking { get; set; } = CapacityRankingRule.Position;

    /// <summary>Add a dense shared expert that every token passes through (OpenMoE, DeepSpeed PR-MoE).</summary>
    [JsonPropertyName("shared_expert")] public bool SharedExpert { get; set; }

    /// <summary>Hidden width of the shared expert and of dense (non-MoE) layers as a multiple of C, [1, 64].</summary>
    [JsonPropertyName("dense_multiplier")] public int DenseMultiplier { get; set; } = 4;

    /// <summary>
    /// MoE every N-th layer (layers N-1, 2N-1, ... are MoE; the others dense FFN); 1 = every layer is MoE, [1, NumLayers].
    /// </summary>
    [JsonPropertyName("moe_layer_frequency")] public int MoeEvery { get; set; } = 1;

    /// <summary>Coefficient of the Switch/GShard load-balancing loss, ≥ 0.</summary>
    [JsonPropertyName("router_aux_loss_coef")] public double LoadBalancingCoef { get; set; } = 0.01;

    /// <summary>Coefficient of the router z-loss, ≥ 0.</summary>
    [JsonPropertyName("router_z_loss_coef")] public double ZLossCoef { get; set; }

    /// <summary>Coefficient of the sliding-window KL(uniform ‖ expert load) loss, ≥ 0.</summary>
    [JsonPropertyName("utilization_kl_coef")] public double UtilizationKlCoef { get; set; }

    /// <summary>Batches in the utilization sliding window W, [1, 100,000].</summary>
    [JsonPropertyName("utilization_window")] public int UtilizationWindow { get; set; } = 100;

    /// <summary>An expert counts as utilised when its window load is at least this share of the fair load, [0, 1].</summary>
    [JsonPropertyName("utilization_threshold")] public double UtilizationThreshold { get; set; } = 0.5;

    /// <summary>Weight initialisation scheme.</summary>
    [JsonPropertyName("init_scheme")] public InitScheme Init { get; set; } = InitScheme.Normal;

    /// <summary>Standard deviation of <see cref="InitScheme.Normal"/>, (0, 1].</summary>
    [JsonPropertyName("initializer_range")] public double InitStd { get; set; } = 0.02;

    /// <summary>
    /// How projections into the residual stream start; null (the default) follows <see cref="Init"/>'s own convention:
    /// <see cref="ResidualInitScheme.Scaled"/> for <see cref="InitScheme.Normal"/> (GPT-2), <see cref="ResidualInitScheme.Unscaled"/>
    /// for Kaiming and Xavier (PyTorch's functions).
    /// </summary>
    [JsonPropertyName("residual_init")] public ResidualInitScheme? ResidualInit { get; set; }

    /// <summary>How biases start: zero (the default) or PyTorch's <c>nn.Linear</c> default uniform(±1/√fan_in), as makeMoE leaves them.</summary>
    [JsonPropertyName("bias_init")] public BiasInitScheme BiasInit { get; set; } = BiasInitScheme.Zero;

    /// <summary>Label smoothing of the LM cross-entropy, [0, 1).</summary>
    [JsonPropertyName("label_smoothing")] public double LabelSmoothing { get; set; }

    /// <summary>Head dimension C / nh.</summary>
    [JsonIgnore] public int HeadDim => HiddenSize / NumHeads;

    /// <summary>Expert hidden width H: <see cref="IntermediateSize"/>, else <see cref="ExpertMultiplier"/> × <see cref="HiddenSize"/>.</summary>
    [JsonIgnore] public int ExpertWidth => IntermediateSize ?? ExpertMultiplier * HiddenSize;

    /// <summary>Key/value heads nkv: <see cref="NumKeyValueHeads"/>, else <see cref="NumHeads"/>.</summary>
    [JsonIgnore] public int KeyValueHeads => NumKeyValueHeads ?? NumHeads;

    /// <summary>Whether the query, key and value projections have a bias (<see cref="AttentionQkvBias"/>, else <see cref="Bias"/>).</summary>
    [JsonIgnore] public bool HasQkvBias => AttentionQkvBias ?? Bias;

    /// <summary>Whether the attention output projection has a bias (<see cref="AttentionOutputBias"/>, else <see cref="Bias"/>).</summary>
    [JsonIgnore] public bool HasAttentionOutputBias => AttentionOutputBias ?? Bias;

    /// <summary>
    /// Whether expert capacity binds in a forward in training (<paramref name="training"/>) or evaluation mode: a
    /// <see cref="CapacityFactor"/> is set, and the mode is training or <see cref="CapacityInEvaluation"/> is on.
    /// </summary>
    public bool CapacityBinds(bool training) => CapacityFactor is not null && (training || CapacityInEvaluation);

    /// <summary>Whether layer <paramref name="layer"/> (0-based) is a MoE layer.</summary>
    public bool IsMoeLayer(int layer) => (layer + 1) % MoeEvery == 0;

    /// <summary>A deep copy.</summary>
    public MoeModelOptions Clone() => (MoeModelOptions)MemberwiseClone();
}
