using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;

namespace YingHub.Moe.Building;

/// <summary>
/// A fluent description of a sparse MoE language model that reads like the architecture and ends in validated
/// <see cref="MoeModelOptions"/> and a <see cref="MoeForCausalLM"/>:
/// <code>
/// var model = MoeModelBuilder.Create()
///     .Vocabulary(65).Context(128).Embedding(192).Heads(6).Layers(8).Dropout(0.3)
///     .Experts(e => e.Count(6).Deep(2).Activation(ExpertActivation.Gelu).TopK(2).NoisyRouter())
///     .LoadBalancing(lb => lb.Switch(0.01).ZLoss(0.001).WindowKl(0.01, window: 100))
///     .Build();
/// </code>
/// Every setter checks nothing by itself: <see cref="BuildOptions"/> and <see cref="Build"/> validate the whole
/// description at once and name every bad field.
/// </summary>
public sealed class MoeModelBuilder
{
    private readonly MoeModelOptions _options;
    private readonly List<string> _freeze = [];

    private MoeModelBuilder(MoeModelOptions options) => _options = options;

    /// <summary>Starts from the library defaults.</summary>
    public static MoeModelBuilder Create() => new(new MoeModelOptions());

    /// <summary>Starts from a preset (<c>tiny</c>, <c>makemoe</c>, <c>yinghub-v2</c>, <c>makemoe-exact</c>, <c>mixtral</c>); everything can be changed further.</summary>
    public static MoeModelBuilder FromPreset(string name) => new(MoePresets.Get(name));

    /// <summary>Starts from a copy of existing options.</summary>
    public static MoeModelBuilder From(MoeModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new(options.Clone());
    }

    /// <summary>Vocabulary size (token ids).</summary>
    public MoeModelBuilder Vocabulary(int size) => Set(o => o.VocabSize = size);

    /// <summary>Context length in tokens.</summary>
    public MoeModelBuilder Context(int length) => Set(o => o.ContextLength = length);

    /// <summary>Model width (n_embd).</summary>
    public MoeModelBuilder Embedding(int width) => Set(o => o.HiddenSize = width);

    /// <summary>Attention heads.</summary>
    public MoeModelBuilder Heads(int count) => Set(o => o.NumHeads = count);

    /// <summary>
    /// Attention heads, and key/value heads for grouped-query attention (<paramref name="keyValue"/>, a divisor of
    /// <paramref name="count"/>; Mixtral: 32 and 8). The KV cache holds the key/value heads only.
    /// </summary>
    public MoeModelBuilder Heads(int count, int keyValue) => Set(o => { o.NumHeads = count; o.NumKeyValueHeads = keyValue; });

    /// <summary>Decoder layers.</summary>
    public MoeModelBuilder Layers(int count) => Set(o => o.NumLayers = count);

    /// <summary>
    /// Dropout <paramref name="p"/> on residual branches and experts, and on attention probabilities and input embeddings
    /// too unless <paramref name="attention"/> or <paramref name="embeddings"/> say otherwise (this replaces a preset's
    /// own embedding dropout, e.g. makemoe's 0).
    /// </summary>
    public MoeModelBuilder Dropout(double p, double? attention = null, double? embeddings = null) =>
        Set(o => { o.Dropout = p; o.AttentionDropout = attention ?? p; o.EmbeddingDropout = embeddings; });

    /// <summary>Stochastic depth (DropPath) probability per residual branch.</summary>
    public MoeModelBuilder StochasticDepth(double p) => Set(o => o.StochasticDepth = p);

    /// <summary>Learned absolute positions (the default).</summary>
    public MoeModelBuilder LearnedPositions() => Set(o => o.Positions = PositionEncoding.Learned);

    /// <summary>Rotary positions with base <paramref name="theta"/>.</summary>
    public MoeModelBuilder Rope(double theta = 10000) => Set(o => { o.Positions = PositionEncoding.Rope; o.RopeTheta = theta; });

    /// <summary>RMSNorm instead of LayerNorm.</summary>
    public MoeModelBuilder RmsNorm(double epsilon = 1e-6) => Set(o => { o.Norm = NormKind.RmsNorm; o.NormEpsilon = epsilon; });

    /// <summary>Share the token embedding with the LM head.</summary>
    public MoeModelBuilder TieEmbeddings(bool tie = true) => Set(o => o.TieWordEmbeddings = tie);

    /// <summary>Biases in linear layers.</summary>
    public MoeModelBuilder Bias(bool bias) => Set(o => o.Bias = bias);

    /// <summary>
    /// Biases per projection: the attention's q/k/v and output projections (null: follow <see cref="Bias"/>) and the
    /// LM head (makeMoE and YingHub-v2 have one; it cannot be tied to the embeddings).
    /// </summary>
    public MoeModelBuilder Biases(bool? attentionQkv, bool? attentionOutput, bool lmHead) =>
        Set(o => { o.AttentionQkvBias = attentionQkv; o.AttentionOutputBias = attentionOutput; o.LmHeadBias = lmHead; });

    /// <summary>How biases start: zero (the default) or PyTorch's <c>nn.Linear</c> uniform draw (makeMoE).</summary>
    public MoeModelBuilder BiasInit(BiasInitScheme scheme) => Set(o => o.BiasInit = scheme);

    /// <summary>The attention scores' scale: head_dim^-0.5 (the standard) or makeMoE's n_embd^-0.5.</summary>
    public MoeModelBuilder AttentionScale(AttentionScaleRule rule) => Set(o => o.AttentionScale = rule);

    /// <summary>Where each sub-layer's norm sits: before it (pre-norm, the default) or after the residual sum (post-norm, the original Transformer).</summary>
    public MoeModelBuilder NormPosition(NormPosition position) => Set(o => o.NormPosition = position);

    /// <summary>
    /// Weight initialisation: the scheme, the standard deviation of <see cref="InitScheme.Normal"/>, and how the
    /// projections into the residual stream start (null: the scheme's own convention, whatever the preset said).
    /// </summary>
    public MoeModelBuilder Init(InitScheme scheme, double std = 0.02, ResidualInitScheme? residual = null) =>
        Set(o => { o.Init = scheme; o.InitStd = std; o.ResidualInit = residual; });

    /// <summary>
    /// How the projections into the residual stream start (<see cref="MoeModelOptions.ResidualInit"/>); null follows the
    /// scheme's convention.
    /// </summary>
    public MoeModelBuilder ResidualInit(ResidualInitScheme? start) => Set(o => o.ResidualInit = start);

    /// <summary>Label smoothing of the LM loss.</summary>
    public MoeModelBuilder LabelSmoothing(double epsilon) => Set(o => o.LabelSmoothing = epsilon);

    /// <summary>The experts, router, capacity, shared expert and MoE interleaving.</summary>
    public MoeModelBuilder Experts(Action<ExpertsBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        configure(new ExpertsBuilder(_options));
        return this;
    }

    /// <summary>The auxiliary losses and their coefficients.</summary>
    public MoeModelBuilder LoadBalancing(Action<LoadBalancingBuilder> configure)
    {
        ArgumentNullException.ThrowIfNull(configure);
        configure(new LoadBalancingBuilder(_options));
        return this;
    }

    /// <summary>
    /// Freezes the parameters <paramref name="patterns"/> select when the model is built: parts (<c>embeddings</c>,
    /// <c>blocks:N</c> for the first N layers, <c>attention</c>, <c>routers</c>, <c>experts</c>, <c>lm_head</c>) or globs
    /// over parameter names (<c>layers.0.*</c>); see <see cref="Training.Freezing.ParameterFreezing"/>. Repeatable.
    /// </summary>
    public MoeModelBuilder Freeze(params string[] patterns)
    {
        ArgumentNullException.ThrowIfNull(patterns);
        _freeze.AddRange(patterns);
        return this;
    }

    /// <summary>Validated options (a copy).</summary>
    /// <exception cref="ArgumentException">Lists every invalid field with its value and allowed range.</exception>
    public MoeModelOptions BuildOptions()
    {
        var options = _options.Clone();
        options.ThrowIfInvalid(nameof(options));
        return options;
    }

    /// <summary>Builds the model and moves it to <paramref name="device"/> (CPU when null).</summary>
    /// <exception cref="ArgumentException">Lists every invalid field with its value and allowed range, or a freeze pattern selects nothing.</exception>
    public MoeForCausalLM Build(torch.Device? device = null)
    {
        var model = new MoeForCausalLM(BuildOptions());
        try
        {
            if (_freeze.Count > 0) Training.Freezing.ParameterFreezing.Freeze(model, _freeze);
        }
        catch
        {
            model.Dispose();
            throw;
        }

        if (device is not null && device.type != DeviceType.CPU) model.to(device);
        return model;
    }

    private MoeModelBuilder Set(Action<MoeModelOptions> change)
    {
        change(_options);
        return this;
    }
}
