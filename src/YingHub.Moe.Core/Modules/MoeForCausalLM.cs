using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Losses;
using YingHub.Moe.Core.Precision;
using YingHub.Moe.Core.Runtime;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>Input of <see cref="MoeForCausalLM"/>.</summary>
/// <param name="InputIds">Token ids (B, T), int64, each in [0, vocab); T ≤ context length (minus cached positions).</param>
/// <param name="Labels">Target ids (B, T), int64, or null for no loss; -100 marks positions to ignore.</param>
/// <param name="Cache">A KV cache from <see cref="MoeForCausalLM.CreateCache"/> for incremental decoding, or null.</param>
/// <param name="RouterStatistics">
/// Compute the router statistics and every auxiliary loss. When false (training steps between log points, evaluation,
/// decoding) the statistics are empty and only what the loss needs is computed: with <paramref name="Labels"/>, the
/// auxiliary losses whose coefficient is not zero (so <see cref="CausalLMOutput.Loss"/> is always the LM loss plus
/// Σ coefficient × auxiliary loss); the others are zero. In training the utilization window is updated either way.
/// </param>
public sealed record CausalLMInput(Tensor InputIds, Tensor? Labels = null, KvCache? Cache = null, bool RouterStatistics = true);

/// <summary>Routing statistics of one MoE layer for one forward pass (for logs and heatmaps). Tensors are owned by the output.</summary>
/// <param name="Layer">Decoder layer index.</param>
/// <param name="TokensPerExpert">Assignments routed to each expert (E), int64, before capacity.</param>
/// <param name="Dropped">Assignments dropped by capacity (E), int64.</param>
/// <param name="Utilization">Share of experts at or above the utilization threshold over the sliding window, scalar fp32.</param>
public sealed record RouterLayerStats(int Layer, Tensor TokensPerExpert, Tensor Dropped, Tensor Utilization);

/// <summary>
/// Output of <see cref="MoeForCausalLM"/>. Every tensor belongs to this record: dispose it (or let the caller's dispose
/// scope collect it). Auxiliary losses are means over MoE layers, reported separately and never folded silently:
/// <see cref="Loss"/> = <see cref="LmLoss"/> + Σ coefficient × auxiliary loss, with the options' coefficients.
/// </summary>
public sealed record CausalLMOutput(
    Tensor Logits,
    Tensor? Loss,
    Tensor? LmLoss,
    Tensor LoadBalancingLoss,
    Tensor ZLoss,
    Tensor UtilizationKlLoss,
    IReadOnlyList<RouterLayerStats> RouterStats) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Logits.Dispose();
        Loss?.Dispose();
        LmLoss?.Dispose();
        LoadBalancingLoss.Dispose();
        ZLoss.Dispose();
        UtilizationKlLoss.Dispose();
        foreach (var s in RouterStats)
        {
            s.TokensPerExpert.Dispose();
            s.Dropped.Dispose();
            s.Utilization.Dispose();
        }
    }
}

/// <summary>
/// A decoder-only transformer language model whose feed-forward layers are sparse Mixture-of-Experts blocks (dense FFN
/// on interleaved layers), with a language-modelling head. State-dict keys follow Hugging Face's Mixtral names
/// (<c>embed_tokens</c>, <c>layers.{i}.self_attn</c>, <c>layers.{i}.block_sparse_moe.gate</c>, <c>norm</c>,
/// <c>lm_head</c>) extended for our architectures (see docs/architecture.md).
/// </summary>
public sealed class MoeForCausalLM : nn.Module<CausalLMInput, CausalLMOutput>, ICausalLanguageModel
{
    private const long IgnoreIndex = -100;

    [ComponentName(Name = "embed_tokens")] private readonly TorchSharp.Modules.Embedding _embedTokens;        // (V, C)
    [ComponentName(Name = "embed_positions")] private readonly TorchSharp.Modules.Embedding? _embedPositions; // (T, C)
    [ComponentName(Name = "layers")] private readonly TorchSharp.Modules.ModuleList<DecoderLayer> _layers;
    [ComponentName(Name = "norm")] private readonly nn.Module<Tensor, Tensor> _norm;
    [ComponentName(Name = "lm_head")] private readonly TorchSharp.Modules.Linear? _lmHead;                     // C -> V; null when tied
    private readonly RotaryEmbedding? _rope; // derived tables, not state

    /// <summary>Builds the model on the CPU from validated <paramref name="options"/> (move it with <c>to(device)</c>).</summary>
    /// <exception cref="ArgumentException">An option is out of range; the message lists every such field.</exception>
    public MoeForCausalLM(MoeModelOptions options) : base(nameof(MoeForCausalLM))
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        TorchRuntime.EnsureInitialized();
        _options = options.Clone();

        _embedTokens = nn.Embedding(options.VocabSize, options.HiddenSize);
        WeightInit.Embedding(_embedTokens.weight!, options);
        if (options.Positions == PositionEncoding.Learned)
        {
            _embedPositions = nn.Embedding(options.ContextLength, options.HiddenSize);
            WeightInit.Embedding(_embedPositions.weight!, options);
        }
        else
        {
            _rope = new RotaryEmbedding(options.HeadDim, options.ContextLength, options.RopeTheta);
        }

        _layers = nn.ModuleList(Enumerable.Range(0, options.NumLayers).Select(i => new DecoderLayer(_options, i)).ToArray());
        _norm = Norms.Create(options);
        if (!options.TieWordEmbeddings)
        {
            // tied: the head reads embed_tokens.weight directly, so the optimizer sees that parameter once
            _lmHead = nn.Linear(options.HiddenSize, options.VocabSize, hasBias: false);
            WeightInit.Weight(_lmHead.weight!, options);
        }
        RegisterComponents();
    }

    private readonly MoeModelOptions _options; // shared with the layers; never handed out

    /// <summary>The architecture (a fresh copy on every read; changing it does not change the model).</summary>
    public MoeModelOptions Options => _options.Clone();

    /// <summary>Experts per token k of every MoE layer; settable at run time within [1, E].</summary>
    public int TopK
    {
        get => _options.TopK;
        set
        {
            if (value < 1 || value > _options.NumExperts)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"TopK must be in [1, NumExperts = {_options.NumExperts}].");
            foreach (var layer in _layers) if (layer.Moe is not null) layer.Moe.TopK = value;
            _options.TopK = value;
        }
    }

    /// <summary>The MoE blocks, with their layer index.</summary>
    internal IEnumerable<(int Layer, SparseMoeBlock Block)> MoeBlocks =>
        _layers.Select((l, i) => (i, l.Moe)).Where(p => p.Moe is not null).Select(p => (p.i, p.Moe!));

    /// <summary>A KV cache for <paramref name="batch"/> sequences of up to the context length, on the model's device and dtype.</summary>
    public KvCache CreateCache(long batch = 1) =>
        new(_options.NumLayers, batch, _options.NumHeads, _options.ContextLength, _options.HeadDim, _embedTokens.weight!.dtype, Device);

    /// <summary>Runs the model. See <see cref="CausalLMInput"/> and <see cref="CausalLMOutput"/>.</summary>
    /// <exception cref="ArgumentException">Wrong shape or dtype, a sequence longer than the context, or a token id outside the vocabulary.</exception>
    public override CausalLMOutput forward(CausalLMInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var ids = input.InputIds;
        CheckInput(ids, input.Labels, input.Cache);
        using var scope = torch.NewDisposeScope();
        long b = ids.size(0), t = ids.size(1);
        long start = input.Cache?.Length ?? 0;

        var x = Embed(ids);                                                                    // (B, T, C)
        if (_embedPositions is not null)
            x = x + _embedPositions.call(torch.arange(start, start + t, device: ids.device)); // (B, T, C)
        x = Regularization.Dropout(x, _options.EmbeddingDropout ?? _options.Dropout, training);

        var lb = new List<Tensor>();
        var z = new List<Tensor>();
        var kl = new List<Tensor>();
        var stats = new List<RouterLayerStats>();
        for (int i = 0; i < _layers.Count; i++)
        {
            (x, var moe) = _layers[i].Forward(x, _rope, input.Cache);
            if (moe is null) continue;
            var block = _layers[i].Moe!;
            bool all = input.RouterStatistics, withLoss = input.Labels is not null;
            bool needLb = all || (withLoss && _options.LoadBalancingCoef != 0);
            bool needZ = all || (withLoss && _options.ZLossCoef != 0);
            bool needKl = all || (withLoss && _options.UtilizationKlCoef != 0);
            if (!all && !needLb && !needZ && !needKl && !training) continue;
            var past = all || needKl ? block.Window.Total() : null;                            // (E)
            if (needLb) lb.Add(RouterLosses.LoadBalancing(moe.Router.Probs, moe.Router.Indices));
            if (needZ) z.Add(RouterLosses.ZLoss(moe.Router.Logits));
            if (needKl) kl.Add(RouterLosses.WindowKlToUniform(past!, moe.Router.Probs, block.TopK));
            var assigned = all || training ? torch.tensor(moe.Assigned, device: ids.device) : null; // (E)
            if (all)
            {
                var dropped = torch.tensor(moe.Assigned.Zip(moe.Kept, (a, k) => a - k).ToArray(), device: ids.device); // (E)
                var utilization = RouterLosses.Utilization(past! + assigned!, _options.UtilizationThreshold);
                stats.Add(new RouterLayerStats(i, assigned!.MoveToOuterDisposeScope(), dropped.MoveToOuterDisposeScope(),
                    utilization.MoveToOuterDisposeScope()));
            }

            if (training) block.Window.Record(assigned!);
        }

        input.Cache?.Advance(t);
        var h = _norm.call(x);                                                                 // (B, T, C)
        var logits = Autocast.Linear(h, _lmHead?.weight ?? _embedTokens.weight!);                 // (B, T, V)
        if (logits.dtype != h.dtype) logits = logits.to(h.dtype);                              // float32 logits for the loss and the sampler under autocast
        var lbLoss = lb.Count > 0 ? torch.stack(lb).mean() : torch.zeros([], device: logits.device);
        var zLoss = z.Count > 0 ? torch.stack(z).mean() : torch.zeros([], device: logits.device);
        var klLoss = kl.Count > 0 ? torch.stack(kl).mean() : torch.zeros([], device: logits.device);

        Tensor? lmLoss = null, loss = null;
        if (input.Labels is not null)
        {
            lmLoss = CrossEntropy(logits.reshape(b * t, -1), input.Labels.reshape(b * t));
            loss = lmLoss.alias(); // a handle of its own: disposing Loss never frees LmLoss
            if (_options.LoadBalancingCoef != 0) loss = loss + lbLoss * _options.LoadBalancingCoef;
            if (_options.ZLossCoef != 0) loss = loss + zLoss * _options.ZLossCoef;
            if (_options.UtilizationKlCoef != 0) loss = loss + klLoss * _options.UtilizationKlCoef;
        }

        return new CausalLMOutput(logits.MoveToOuterDisposeScope(), loss?.MoveToOuterDisposeScope(), lmLoss?.MoveToOuterDisposeScope(),
            lbLoss.MoveToOuterDisposeScope(), zLoss.MoveToOuterDisposeScope(), klLoss.MoveToOuterDisposeScope(), stats);
    }

    /// <inheritdoc />
    public Device Device => _embedTokens.weight!.device;

    /// <inheritdoc />
    int ICausalLanguageModel.ContextLength => _options.ContextLength;

    /// <inheritdoc />
    int ICausalLanguageModel.VocabSize => _options.VocabSize;

    /// <inheritdoc />
    public Tensor Logits(Tensor inputIds)
    {
        var output = call(new CausalLMInput(inputIds, RouterStatistics: false));
        output.LoadBalancingLoss.Dispose(); // no labels and no statistics: only the (zero) auxiliary losses to free
        output.ZLoss.Dispose();
        output.UtilizationKlLoss.Dispose();
        return output.Logits;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _rope?.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>Total number of parameters (tied weights counted once).</summary>
    public long ParameterCount => parameters().Sum(p => p.numel());

    /// <summary>
    /// Parameters used per token: everything but the routed experts, plus k × the mean size of one routed expert on
    /// each MoE layer (deep and simple experts differ in size; the mean is the expectation under uniform routing).
    /// </summary>
    public long ActiveParameterCount
    {
        get
        {
            long active = ParameterCount;
            foreach (var (_, block) in MoeBlocks)
            {
                long experts = block.named_parameters()
                    .Where(p => p.name.StartsWith("experts.", StringComparison.Ordinal) || p.name.StartsWith("deep_experts.", StringComparison.Ordinal))
                    .Sum(p => p.parameter.numel());
                active -= experts - (long)Math.Round((double)experts * block.TopK / block.NumExperts);
            }

            return active;
        }
    }

    private Tensor Embed(Tensor ids)
    {
        try
        {
            return _embedTokens.call(ids); // (B, T, C)
        }
        catch (ExternalException)
        {
            // Report the offending id rather than libtorch's "index out of range in self" (the check costs nothing
            // on the happy path: it runs only after libtorch refused the input).
            using var scope = torch.NewDisposeScope();
            long bad = ids.lt(0).any().item<bool>() ? ids.min().item<long>() : ids.max().item<long>();
            throw new ArgumentException($"Token id {bad} is outside the vocabulary [0, {_options.VocabSize}).", nameof(CausalLMInput.InputIds));
        }
    }

    /// <summary>LM cross-entropy in fp32; a label outside [0, V) ∪ {-100} gets an ArgumentException naming it (checked only after libtorch refuses).</summary>
    private Tensor CrossEntropy(Tensor logits, Tensor labels)
    {
        try
        {
            return nn.functional.cross_entropy(logits.to(ScalarType.Float32), labels, ignore_index: IgnoreIndex, label_smoothing: _options.LabelSmoothing);
        }
        catch (ExternalException)
        {
            using var scope = torch.NewDisposeScope();
            var bad = labels.masked_select((labels.ne(IgnoreIndex) & (labels.lt(0) | labels.ge(_options.VocabSize))));
            string value = bad.numel() > 0 ? bad[0].item<long>().ToString() : "(none)";
            throw new ArgumentException($"Label {value} is outside the vocabulary [0, {_options.VocabSize}) and is not the ignore index {IgnoreIndex}.", nameof(CausalLMInput.Labels));
        }
    }

    private void CheckInput(Tensor ids, Tensor? labels, KvCache? cache)
    {
        if (ids.dim() != 2) throw new ArgumentException($"InputIds must be (B, T); got shape [{string.Join(", ", ids.shape)}].", nameof(CausalLMInput.InputIds));
        if (ids.dtype != ScalarType.Int64) throw new ArgumentException($"InputIds must be int64; got {ids.dtype}.", nameof(CausalLMInput.InputIds));
        long t = ids.size(1);
        if (t < 1) throw new ArgumentException("InputIds has no positions.", nameof(CausalLMInput.InputIds));
        if (cache is not null) cache.EnsureRoom(ids.size(0), t, (_options.NumLayers, _options.NumHeads, _options.HeadDim));
        else if (t > _options.ContextLength)
            throw new ArgumentException($"Sequence length {t} exceeds the context length {_options.ContextLength}.", nameof(CausalLMInput.InputIds));
        if (labels is not null && labels.dtype != ScalarType.Int64)
            throw new ArgumentException($"Labels must be int64; got {labels.dtype}.", nameof(CausalLMInput.Labels));
        if (cache is not null && torch.is_grad_enabled())
            throw new ArgumentException("A KV cache is for inference: run cached forwards under torch.no_grad() (the cache holds detached copies, so keys and values would get no gradient).", nameof(CausalLMInput.Cache));
        if (labels is not null && !labels.shape.SequenceEqual(ids.shape))
            throw new ArgumentException($"Labels shape [{string.Join(", ", labels.shape)}] differs from InputIds shape [{string.Join(", ", ids.shape)}].", nameof(CausalLMInput.Labels));
    }

}
