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
/// <param name="Labels">
/// Target ids (B, T), int64, or null for no loss; -100 marks positions to ignore (padding is ignored whatever its label).
/// </param>
/// <param name="Cache">A KV cache from <see cref="MoeForCausalLM.CreateCache"/> for incremental decoding, or null.</param>
/// <param name="RouterStatistics">
/// Compute the router statistics and every auxiliary loss. When false (training steps between log points, evaluation,
/// decoding) the statistics are empty and only what the loss needs is computed: with <paramref name="Labels"/>, the
/// auxiliary losses whose coefficient is not zero (so <see cref="CausalLMOutput.Loss"/> is always the LM loss plus
/// Σ coefficient × auxiliary loss); the others are zero. In training the utilization window is updated either way.
/// </param>
/// <param name="AttentionMask">
/// 1 (or true) for real tokens and 0 for padding (B, T), bool or integer, on the input's device, for the T new positions
/// (a cache remembers the padding of what it holds), as Hugging Face's <c>attention_mask</c>. Pad positions attend to
/// nothing and are attended by nothing, positions (learned or rotary) count real tokens only, padding runs through no
/// routed expert and takes no capacity (the shared expert and dense layers still compute on it; nothing reads the
/// result), and the LM loss and router losses skip it: a left-padded row gives the logits of the same row alone at its
/// real positions. Null, or a mask of ones, is the unpadded fast path.
/// </param>
/// <param name="OutputRouterLogits">Return every MoE layer's router logits and choices in <see cref="CausalLMOutput.Routing"/> (Hugging Face's <c>output_router_logits</c>).</param>
/// <param name="OutputHiddenStates">Return the final hidden states in <see cref="CausalLMOutput.LastHiddenState"/> (e.g. for a value head).</param>
/// <param name="RoutingReplay">
/// Rollout routing replay (see <see cref="Modules.RoutingReplay"/>): the experts every token must use, one (B·T, k)
/// int64 tensor per MoE layer in the order of <see cref="CausalLMOutput.Routing"/> (e.g. its
/// <see cref="MoeLayerRouting.SelectedExperts"/> from a rollout), row-major (token b·T + t) over the T new positions,
/// on the input's device, each real token's k experts distinct and in [0, E). The router skips its top-k choice and its
/// noise; the gate weights are recomputed from the current logits at those experts as the router computes them for its
/// own choice, so gradients reach the router. Padding tokens still go to no expert (their rows are ignored) and
/// capacity still applies. Null: the router chooses.
/// </param>
/// <param name="PrefixLength">
/// Prefix-LM attention (UL2's S-denoiser, T5's prefix LM): per row b, the first <c>PrefixLength[b]</c> columns attend to
/// each other in both directions, and every later position attends causally to everything before it, the whole prefix
/// included (B), int64, each in [0, T]; 0 is causal attention. Only in a forward without cached positions: generation
/// after a prefix runs the prompt with its prefix into an empty cache, then decodes causally from that cache, which
/// gives the logits a full forward with the same prefix gives. Combines with <see cref="AttentionMask"/> (padding still
/// sees nothing). The loss is not changed: mark the prefix's labels −100 to train on the rest only. Null: causal.
/// </param>
public sealed record CausalLMInput(Tensor InputIds, Tensor? Labels = null, KvCache? Cache = null, bool RouterStatistics = true,
    Tensor? AttentionMask = null, bool OutputRouterLogits = false, bool OutputHiddenStates = false, IReadOnlyList<Tensor>? RoutingReplay = null,
    Tensor? PrefixLength = null);

/// <summary>The router's decision at one MoE layer for the N = B·T tokens of a forward (row-major: token b·T + t). Tensors are owned by the output.</summary>
/// <param name="Layer">Decoder layer index.</param>
/// <param name="Logits">Raw router logits (N, E), fp32, before noise.</param>
/// <param name="SelectedExperts">
/// The k experts chosen per token (N, k), int64, best first (after noise in training); under
/// <see cref="CausalLMInput.RoutingReplay"/> the replayed ones in their given order (padding rows: experts 0..k−1).
/// </param>
/// <param name="Weights">Their gate weights (N, k).</param>
/// <param name="Dropped">
/// Which of those assignments expert capacity dropped (N, k), bool: true where the token did not reach that expert
/// (its contribution is zero; the residual carries the token). All false when capacity did not bind (dropless, or
/// evaluation without <see cref="Configuration.MoeModelOptions.CapacityInEvaluation"/>) and on padding. The model always
/// fills it; null only in a record built elsewhere.
/// </param>
public sealed record MoeLayerRouting(int Layer, Tensor Logits, Tensor SelectedExperts, Tensor Weights, Tensor? Dropped = null) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Logits.Dispose();
        SelectedExperts.Dispose();
        Weights.Dispose();
        Dropped?.Dispose();
    }
}

/// <summary>Routing statistics of one MoE layer for one forward pass (for logs and heatmaps). Tensors are owned by the output.</summary>
/// <param name="Layer">Decoder layer index.</param>
/// <param name="TokensPerExpert">Assignments routed to each expert (E), int64, before capacity, counting the tokens router losses count (real, with a label).</param>
/// <param name="Dropped">Assignments dropped by capacity (E), int64, among every real token (capacity acts on all of them, labelled or not).</param>
/// <param name="Utilization">Share of experts at or above the utilization threshold over the sliding window, scalar fp32.</param>
public sealed record RouterLayerStats(int Layer, Tensor TokensPerExpert, Tensor Dropped, Tensor Utilization);

/// <summary>
/// Output of <see cref="MoeForCausalLM"/>. Every tensor belongs to this record: dispose it (or let the caller's dispose
/// scope collect it). Auxiliary losses are means over MoE layers, reported separately and never folded silently:
/// <see cref="Loss"/> = <see cref="LmLoss"/> + Σ coefficient × auxiliary loss, with the options' coefficients.
/// </summary>
/// <param name="Logits">Next-token logits (B, T, V), float32.</param>
/// <param name="Loss">LM loss plus the weighted auxiliary losses (), with labels.</param>
/// <param name="LmLoss">Mean cross-entropy over real, labelled positions (), with labels.</param>
/// <param name="LoadBalancingLoss">Mean over MoE layers of the Switch load-balancing loss ().</param>
/// <param name="ZLoss">Mean over MoE layers of the router z-loss ().</param>
/// <param name="UtilizationKlLoss">Mean over MoE layers of the sliding-window KL to uniform ().</param>
/// <param name="RouterStats">Per-layer routing statistics, when asked for.</param>
/// <param name="Routing">Per-MoE-layer router logits and choices, when <see cref="CausalLMInput.OutputRouterLogits"/>; else empty.</param>
/// <param name="LastHiddenState">The final hidden states (B, T, C) after the final norm, when <see cref="CausalLMInput.OutputHiddenStates"/>.</param>
public sealed record CausalLMOutput(
    Tensor Logits,
    Tensor? Loss,
    Tensor? LmLoss,
    Tensor LoadBalancingLoss,
    Tensor ZLoss,
    Tensor UtilizationKlLoss,
    IReadOnlyList<RouterLayerStats> RouterStats,
    IReadOnlyList<MoeLayerRouting>? Routing = null,
    Tensor? LastHiddenState = null) : IDisposable
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

        foreach (var r in Routing ?? []) r.Dispose();
        LastHiddenState?.Dispose();
    }
}

/// <summary>
/// A decoder-only transformer language model whose feed-forward layers are sparse Mixture-of-Experts blocks (dense FFN
/// on interleaved layers), with a language-modelling head. State-dict keys follow Hugging Face's Mixtral names
/// (<c>embed_tokens</c>, <c>layers.{i}.self_attn</c>, <c>layers.{i}.block_sparse_moe.gate</c>, <c>norm</c>,
/// <c>lm_head</c>) extended for our architectures (see docs/architecture.md).
/// </summary>
public sealed class MoeForCausalLM : nn.Module<CausalLMInput, CausalLMOutput>, ICausalLanguageModel, IUnhookedSubmodules
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
            _lmHead = nn.Linear(options.HiddenSize, options.VocabSize, hasBias: options.LmHeadBias);
            WeightInit.Linear(_lmHead, options);
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

    /// <summary>
    /// Whether a forward may take a KV cache (<see cref="CausalLMInput.Cache"/>) in evaluation mode: false when expert
    /// capacity binds there (<see cref="MoeModelOptions.CapacityInEvaluation"/>), because a token's capacity then
    /// depends on how many tokens share its forward and a cached step (one token) cannot reproduce a full forward's
    /// drops. Generate by recomputing the window instead (<see cref="Generation.TokenGenerator"/> does so by itself).
    /// </summary>
    public bool SupportsCachedDecoding => !_options.CapacityBinds(training: false);

    /// <summary>A KV cache for <paramref name="batch"/> sequences of up to the context length, on the model's device and dtype.</summary>
    public KvCache CreateCache(long batch = 1) =>
        new(_options.NumLayers, batch, _options.KeyValueHeads, _options.ContextLength, _options.HeadDim, _embedTokens.weight!.dtype, Device);

    /// <summary>Runs the model. See <see cref="CausalLMInput"/> and <see cref="CausalLMOutput"/>.</summary>
    /// <exception cref="ArgumentException">
    /// Wrong shape or dtype, a sequence longer than the context, a token id outside the vocabulary, or a routing replay
    /// that does not fit (count, shape, dtype, device, an expert out of range or repeated; the message names the layer).
    /// </exception>
    public override CausalLMOutput forward(CausalLMInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var ids = input.InputIds;
        CheckInput(ids, input.Labels, input.Cache, input.AttentionMask);
        CheckPrefix(ids, input.PrefixLength, input.Cache);
        using var scope = torch.NewDisposeScope();
        long b = ids.size(0), t = ids.size(1);
        long start = input.Cache?.Length ?? 0;
        var real = RealTokens(input.AttentionMask);                                            // (B, T) bool, or null: no padding
        bool padded = real is not null || input.Cache?.HasPadding == true;
        var mask = padded || input.PrefixLength is not null
            ? ForwardMask.Build(real, b, t, input.Cache, ids.device, input.PrefixLength)
            : null;                                                                            // null: the causal fast path
        var labels = input.Labels;
        if (labels is not null && real is not null) labels = labels.masked_fill(real.logical_not(), IgnoreIndex); // (B, T): padding has no target
        var request = MoeRequest(input, real, labels);
        var replay = input.RoutingReplay is null ? null : RoutingReplay.Prepare(input.RoutingReplay, MoeBlocks.Select(m => m.Layer).ToList(),
            b * t, _options.TopK, _options.NumExperts, real?.reshape(-1), ids.device);                  // per MoE layer (N, k)

        var x = Embed(ids);                                                                    // (B, T, C)
        if (_embedPositions is not null)
            x = x + _embedPositions.call(mask?.Positions ?? torch.arange(start, start + t, device: ids.device)); // (B, T, C)
        x = Regularization.Dropout(x, _options.EmbeddingDropout ?? _options.Dropout, training);

        var moeOutputs = new List<MoeBlockOutput>();
        for (int i = 0; i < _layers.Count; i++)
        {
            var layerRequest = replay is null || _layers[i].Moe is null ? request : request with { ForcedExperts = replay[moeOutputs.Count] };
            (x, var moe) = _layers[i].Forward(x, _rope, input.Cache, mask, layerRequest);
            if (moe is not null) moeOutputs.Add(moe);
        }

        if (padded) input.Cache?.RecordRealTokens(real, t); // after the layers: a forward that throws leaves the cache as it was
        input.Cache?.Advance(t);
        var h = _norm.call(x);                                                                 // (B, T, C)
        var logits = Autocast.Linear(h, _lmHead?.weight ?? _embedTokens.weight!, _lmHead?.bias);  // (B, T, V)
        if (logits.dtype != h.dtype) logits = logits.to(h.dtype);                              // float32 logits for the loss and the sampler under autocast
        var lbLoss = MeanOverLayers(moeOutputs.Select(m => m.LoadBalancingLoss), logits.device);
        var zLoss = MeanOverLayers(moeOutputs.Select(m => m.ZLoss), logits.device);
        var klLoss = MeanOverLayers(moeOutputs.Select(m => m.UtilizationKlLoss), logits.device);

        Tensor? lmLoss = null, loss = null;
        if (labels is not null)
        {
            lmLoss = CrossEntropy(logits.reshape(b * t, -1), labels.reshape(b * t));
            loss = lmLoss.alias(); // a handle of its own: disposing Loss never frees LmLoss
            if (_options.LoadBalancingCoef != 0) loss = loss + lbLoss * _options.LoadBalancingCoef;
            if (_options.ZLossCoef != 0) loss = loss + zLoss * _options.ZLossCoef;
            if (_options.UtilizationKlCoef != 0) loss = loss + klLoss * _options.UtilizationKlCoef;
        }

        return new CausalLMOutput(logits.MoveToOuterDisposeScope(), loss?.MoveToOuterDisposeScope(), lmLoss?.MoveToOuterDisposeScope(),
            lbLoss.MoveToOuterDisposeScope(), zLoss.MoveToOuterDisposeScope(), klLoss.MoveToOuterDisposeScope(),
            moeOutputs.Select(m => m.Stats).OfType<RouterLayerStats>().Select(MoveOut).ToList(),
            input.OutputRouterLogits ? moeOutputs.Select(m => MoveOut(m.Routing!)).ToList() : [],
            input.OutputHiddenStates ? h.MoveToOuterDisposeScope() : null);
    }

    /// <summary>
    /// What every MoE block computes besides its output: the auxiliary losses the loss needs (or all of them, with
    /// statistics), over the tokens that count (real, labelled), and which tokens run through the experts (real ones).
    /// </summary>
    private MoeBlockRequest MoeRequest(CausalLMInput input, Tensor? real, Tensor? labels)
    {
        bool all = input.RouterStatistics, withLoss = labels is not null;
        bool lb = all || (withLoss && _options.LoadBalancingCoef != 0);
        bool z = all || (withLoss && _options.ZLossCoef != 0);
        bool kl = all || (withLoss && _options.UtilizationKlCoef != 0);
        Tensor? counted = real?.reshape(-1);                                                   // (N)
        bool counts = lb || z || kl || training;                                               // anything that counts tokens (training: the window)
        if (counts && labels is not null) counted = labels.reshape(-1).ne(IgnoreIndex);        // (N): padding is already -100; no host read
        long? dispatched = real is not null && _options.CapacityBinds(training)
            ? real.sum().item<long>()                                                          // once per forward, for every layer's capacity
            : null;
        return new MoeBlockRequest(real?.reshape(-1), counted, lb, z, kl, Statistics: all, Routing: input.OutputRouterLogits, DispatchedTokens: dispatched);
    }

    /// <summary>The real tokens (B, T) bool of an attention mask, or null when there is none or it has no padding (one host read).</summary>
    private static Tensor? RealTokens(Tensor? attentionMask)
    {
        if (attentionMask is null) return null;
        var real = attentionMask.dtype == ScalarType.Bool ? attentionMask : attentionMask.ne(0); // (B, T)
        return real.all().item<bool>() ? null : real;
    }

    private static RouterLayerStats MoveOut(RouterLayerStats s)
    {
        s.TokensPerExpert.MoveToOuterDisposeScope();
        s.Dropped.MoveToOuterDisposeScope();
        s.Utilization.MoveToOuterDisposeScope();
        return s;
    }

    private static MoeLayerRouting MoveOut(MoeLayerRouting r)
    {
        r.Logits.MoveToOuterDisposeScope();
        r.SelectedExperts.MoveToOuterDisposeScope();
        r.Weights.MoveToOuterDisposeScope();
        r.Dropped?.MoveToOuterDisposeScope();
        return r;
    }

    private static Tensor MeanOverLayers(IEnumerable<Tensor?> losses, Device device)
    {
        var present = losses.OfType<Tensor>().ToList();
        return present.Count > 0 ? torch.stack(present).mean() : torch.zeros([], device: device);
    }

    /// <inheritdoc />
    public Device Device => _embedTokens.weight!.device;

    /// <inheritdoc />
    int ICausalLanguageModel.ContextLength => _options.ContextLength;

    /// <summary>The untied <c>lm_head</c>: the forward reads its weight (through <see cref="Autocast.Linear"/>) rather than calling it.</summary>
    IReadOnlyCollection<string> IUnhookedSubmodules.UnhookedSubmodules => _lmHead is null ? [] : ["lm_head"];

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

    /// <summary>
    /// Teacher-forced log-probabilities of each sequence's own tokens: <c>log p(ids[b, t + 1] | ids[b, ..t])</c>
    /// (B, T − 1), fp32, in one forward (differentiable when gradients are on; the model's training mode is left as it
    /// is). With <paramref name="attentionMask"/> (left-padded rows) a position counts when both the token and its
    /// predecessor are real, so a padded row gives the log-probabilities of the same row alone (at its positions), and
    /// every other position is 0. <see cref="TokenLogProbs.Gather"/> does the same from logits already at hand. In
    /// training mode this is a training forward (dropout, router noise, and the utilization window records the tokens):
    /// call <c>eval()</c> first for the log-probabilities of a frozen policy or reference.
    /// </summary>
    /// <param name="inputIds">Token ids (B, T), int64, T ≥ 2.</param>
    /// <param name="attentionMask">1 for real tokens, 0 for padding (B, T); null: no padding.</param>
    /// <param name="routingReplay">Experts to force per MoE layer (<see cref="CausalLMInput.RoutingReplay"/>); null: the router chooses.</param>
    /// <returns>Log-probabilities (B, T − 1) and the positions that count (B, T − 1), bool; both owned by the caller.</returns>
    /// <exception cref="ArgumentException">Fewer than two positions, or an input <see cref="forward"/> refuses.</exception>
    public (Tensor LogProbs, Tensor Mask) SequenceLogProbs(Tensor inputIds, Tensor? attentionMask = null, IReadOnlyList<Tensor>? routingReplay = null)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (inputIds.dim() != 2 || inputIds.size(1) < 2)
            throw new ArgumentException($"InputIds must be (B, T) with T ≥ 2 (a first token to condition on); got shape [{string.Join(", ", inputIds.shape)}].", nameof(inputIds));
        using var scope = torch.NewDisposeScope();
        long t = inputIds.size(1);
        using var output = call(new CausalLMInput(inputIds, RouterStatistics: false, AttentionMask: attentionMask, RoutingReplay: routingReplay));
        var real = attentionMask is null ? torch.ones_like(inputIds, dtype: ScalarType.Bool) : attentionMask.ne(0); // (B, T)
        var counted = real.narrow(1, 0, t - 1) & real.narrow(1, 1, t - 1);                                          // (B, T - 1)
        var logProbs = TokenLogProbs.Gather(output.Logits.narrow(1, 0, t - 1), inputIds.narrow(1, 1, t - 1), counted); // (B, T - 1)
        return (logProbs.MoveToOuterDisposeScope(), counted.MoveToOuterDisposeScope());
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

    private static void CheckPrefix(Tensor ids, Tensor? prefixLength, KvCache? cache)
    {
        if (prefixLength is null) return;
        long b = ids.size(0), t = ids.size(1);
        if (prefixLength.dim() != 1 || prefixLength.size(0) != b)
            throw new ArgumentException($"PrefixLength must be (B) = [{b}]; got shape [{string.Join(", ", prefixLength.shape)}].", nameof(CausalLMInput.PrefixLength));
        if (prefixLength.dtype != ScalarType.Int64)
            throw new ArgumentException($"PrefixLength must be int64; got {prefixLength.dtype}.", nameof(CausalLMInput.PrefixLength));
        if (prefixLength.device_type != ids.device_type || prefixLength.device_index != ids.device_index)
            throw new ArgumentException($"PrefixLength is on {prefixLength.device}, InputIds on {ids.device}: put both on the model's device.", nameof(CausalLMInput.PrefixLength));
        if (cache is { Length: > 0 })
            throw new ArgumentException($"PrefixLength needs a forward without cached positions (the cache holds {cache.Length}): run the prompt with its prefix into an empty cache, then decode causally.", nameof(CausalLMInput.PrefixLength));
        using var scope = torch.NewDisposeScope();
        var bad = prefixLength.masked_select(prefixLength.lt(0) | prefixLength.gt(t));
        if (bad.numel() > 0)
            throw new ArgumentException($"PrefixLength {bad[0].item<long>()} is outside [0, T = {t}].", nameof(CausalLMInput.PrefixLength));
    }

    private void CheckInput(Tensor ids, Tensor? labels, KvCache? cache, Tensor? attentionMask)
    {
        if (ids.dim() != 2) throw new ArgumentException($"InputIds must be (B, T); got shape [{string.Join(", ", ids.shape)}].", nameof(CausalLMInput.InputIds));
        if (ids.dtype != ScalarType.Int64) throw new ArgumentException($"InputIds must be int64; got {ids.dtype}.", nameof(CausalLMInput.InputIds));
        long t = ids.size(1);
        if (t < 1) throw new ArgumentException("InputIds has no positions.", nameof(CausalLMInput.InputIds));
        if (cache is not null) cache.EnsureRoom(ids.size(0), t, (_options.NumLayers, _options.KeyValueHeads, _options.HeadDim));
        else if (t > _options.ContextLength)
            throw new ArgumentException($"Sequence length {t} exceeds the context length {_options.ContextLength}.", nameof(CausalLMInput.InputIds));
        if (labels is not null && labels.dtype != ScalarType.Int64)
            throw new ArgumentException($"Labels must be int64; got {labels.dtype}.", nameof(CausalLMInput.Labels));
        if (cache is not null && torch.is_grad_enabled())
            throw new ArgumentException("A KV cache is for inference: run cached forwards under torch.no_grad() (the cache holds detached copies, so keys and values would get no gradient).", nameof(CausalLMInput.Cache));
        if (cache is not null && _options.CapacityBinds(training))
            throw new ArgumentException($"This model applies expert capacity in {(training ? "training" : "evaluation")} mode (capacity_factor {_options.CapacityFactor}{(training ? "" : ", capacity_in_eval")}): a token's capacity depends on how many tokens share its forward, so a cached step cannot give a full forward's logits. Recompute the window instead (SamplingOptions.UseCache = false).", nameof(CausalLMInput.Cache));
        if (labels is not null && !labels.shape.SequenceEqual(ids.shape))
            throw new ArgumentException($"Labels shape [{string.Join(", ", labels.shape)}] differs from InputIds shape [{string.Join(", ", ids.shape)}].", nameof(CausalLMInput.Labels));
        if (attentionMask is null) return;
        if (!attentionMask.shape.SequenceEqual(ids.shape))
            throw new ArgumentException($"AttentionMask shape [{string.Join(", ", attentionMask.shape)}] differs from InputIds shape [{string.Join(", ", ids.shape)}] (it covers the new positions only; a cache remembers the rest).", nameof(CausalLMInput.AttentionMask));
        if (attentionMask.device_type != ids.device_type || attentionMask.device_index != ids.device_index)
            throw new ArgumentException($"AttentionMask is on {attentionMask.device}, InputIds on {ids.device}: put both on the model's device.", nameof(CausalLMInput.AttentionMask));
        if (attentionMask.dtype is not (ScalarType.Bool or ScalarType.Int64 or ScalarType.Int32 or ScalarType.Int8 or ScalarType.Byte))
            throw new ArgumentException($"AttentionMask must be bool or an integer type; got {attentionMask.dtype}.", nameof(CausalLMInput.AttentionMask));
        if (attentionMask.dtype != ScalarType.Bool)
        {
            using var scope = torch.NewDisposeScope();
            var bad = attentionMask.masked_select(attentionMask.ne(0) & attentionMask.ne(1));
            if (bad.numel() > 0)
                throw new ArgumentException($"AttentionMask value {bad[0].item<long>()} is not 0 (padding) or 1 (a real token).", nameof(CausalLMInput.AttentionMask));
        }
    }

}
