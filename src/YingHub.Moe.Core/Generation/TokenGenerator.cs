using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Generation;

/// <summary>
/// Autoregressive decoding with a <see cref="MoeForCausalLM"/>, one sequence or a batch: KV-cache decoding by default
/// (recomputation of the whole window per token when <see cref="SamplingOptions.UseCache"/> is off, or when the model
/// applies expert capacity in evaluation and so cannot decode from a cache: <see cref="MoeForCausalLM.SupportsCachedDecoding"/>).
/// <para>
/// Past the context length the cache slides: it restarts from the last <see cref="SamplingOptions.SlideKeep"/> ×
/// context tokens, recomputed in one forward, so the logits always equal a fresh forward over the window the model
/// sees (with learned absolute positions a cached key cannot move to a new position). Recomputation instead crops to
/// the last context-length tokens every step, as makeMoE does; within the context both give the same greedy text.
/// </para>
/// </summary>
public sealed class TokenGenerator
{
    private readonly MoeForCausalLM _model;

    /// <summary>Generates with <paramref name="model"/> (switched to evaluation mode while generating).</summary>
    public TokenGenerator(MoeForCausalLM model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
    }

    /// <summary>The new tokens after <paramref name="prompt"/> (at least one token).</summary>
    public long[] Generate(IReadOnlyList<long> prompt, SamplingOptions options, CancellationToken cancellationToken = default) =>
        Stream(prompt, options, cancellationToken).ToArray();

    /// <summary>Yields each new token as soon as it is sampled.</summary>
    /// <exception cref="ArgumentException">An empty prompt, a token id outside the vocabulary, or invalid options.</exception>
    public IEnumerable<long> Stream(IReadOnlyList<long> prompt, SamplingOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        Check([prompt], options);
        return Decode([prompt], options, cancellationToken).Select(step => step[0]);
    }

    /// <summary>
    /// Generates for a batch of prompts (e.g. RL rollouts), of equal or different lengths: shorter prompts are
    /// left-padded and masked (<see cref="CausalLMInput.AttentionMask"/>), so with greedy decoding each row gets the
    /// tokens it gets when generated alone (within the context length; past it the padded batch slides together). A
    /// sequence that produces a stop sequence stops there and its row stops changing; the others go on. Returns each
    /// sequence's new tokens.
    /// </summary>
    /// <exception cref="ArgumentException">No prompts, an empty prompt, a bad token id, or invalid options.</exception>
    public long[][] GenerateBatch(IReadOnlyList<IReadOnlyList<long>> prompts, SamplingOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        Check(prompts, options);
        var outputs = prompts.Select(_ => new List<long>()).ToArray();
        foreach (long[] step in Decode(prompts, options, cancellationToken))
        {
            for (int b = 0; b < step.Length; b++) if (step[b] >= 0) outputs[b].Add(step[b]);
        }

        return outputs.Select(o => o.ToArray()).ToArray();
    }

    private void Check(IReadOnlyList<IReadOnlyList<long>> prompts, SamplingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        if (prompts.Count == 0) throw new ArgumentException("At least one prompt is needed.", nameof(prompts));
        int vocab = _model.Options.VocabSize;
        for (int b = 0; b < prompts.Count; b++)
        {
            var p = prompts[b] ?? throw new ArgumentException($"Prompt {b} is null.", nameof(prompts));
            if (p.Count == 0) throw new ArgumentException($"Prompt {b} is empty: a prompt needs at least one token.", nameof(prompts));
            foreach (long id in p)
                if (id < 0 || id >= vocab) throw new ArgumentException($"Prompt token id {id} is outside the vocabulary [0, {vocab}).", nameof(prompts));
        }
    }

    /// <summary>
    /// Yields, per step, each sequence's new token, or -1 for a sequence that has already stopped. A stopped sequence
    /// leaves the batch: its cache row is freed and later steps run only the sequences still generating.
    /// </summary>
    private IEnumerable<long[]> Decode(IReadOnlyList<IReadOnlyList<long>> prompts, SamplingOptions options, CancellationToken cancellationToken)
    {
        bool wasTraining = _model.training;
        _model.eval();
        int batch = prompts.Count, window = _model.Options.ContextLength;
        int keep = Math.Max(1, (int)(options.SlideKeep * window));
        var tokens = prompts.Select(p => new List<long>(p)).ToArray();
        var active = Enumerable.Range(0, batch).ToList(); // the sequences still generating, in the cache's row order
        using var generator = options.Seed is { } seed ? new torch.Generator((ulong)seed, _model.Device) : null;
        using var cache = options.UseCache && _model.SupportsCachedDecoding ? _model.CreateCache(batch) : null;
        Tensor? next = null; // logits (active, V) of the next tokens
        try
        {
            bool filled = false;
            for (int i = 0; i < options.MaxNewTokens && active.Count > 0; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var step = new long[batch];
                Array.Fill(step, -1L);
                using (torch.NewDisposeScope())
                using (torch.inference_mode()) // no autograd, and no view tracking or version counters: less work per op than no_grad
                {
                    var live = active.Select(b => tokens[b]).ToArray();
                    var promptLengths = options.PromptAsPrefix ? active.Select(b => prompts[b].Count).ToArray() : null;
                    if (cache is null)
                    {
                        next?.Dispose();
                        next = Forward(live, window, null, promptLengths); // recompute the whole window every token
                    }
                    else if (next is null)
                    {
                        // fill the cache with the prompts, or after a slide with the kept tails, in one forward
                        cache.Reset();
                        next = Forward(live, filled ? keep : window, cache, promptLengths);
                        filled = true;
                    }

                    long[] sampled = Sample(next, live, options, i, generator);
                    var still = new List<long>(active.Count); // rows (of the current batch) that go on
                    for (int j = 0; j < active.Count; j++)
                    {
                        int b = active[j];
                        tokens[b].Add(sampled[j]);
                        step[b] = sampled[j];
                        if (!EndsWithStop(tokens[b], prompts[b].Count, options.StopSequences)) still.Add(j);
                    }

                    if (still.Count < active.Count)
                    {
                        active = still.Select(j => active[(int)j]).ToList();
                        if (cache is not null && still.Count > 0) cache.KeepRows(still); // stopped sequences cost no more decoding
                        live = active.Select(b => tokens[b]).ToArray();
                    }

                    if (cache is not null)
                    {
                        next.Dispose();
                        next = cache.Length == window || i + 1 == options.MaxNewTokens || active.Count == 0
                            ? null
                            : Forward(live, 1, cache);
                    }

                    next?.DetachFromDisposeScope(); // ours until the next step, whatever scope the caller has open
                }

                yield return step;
            }
        }
        finally
        {
            next?.Dispose();
            if (wasTraining) _model.train();
        }
    }

    /// <summary>Whether <paramref name="tokens"/> ends with one of <paramref name="stops"/> made of tokens after the first <paramref name="promptLength"/>.</summary>
    internal static bool EndsWithStop(List<long> tokens, int promptLength, IList<long[]> stops)
    {
        foreach (long[] stop in stops)
        {
            int start = tokens.Count - stop.Length;
            if (start < promptLength) continue; // only generated tokens can complete a stop sequence
            bool match = true;
            for (int j = 0; j < stop.Length && match; j++) match = tokens[start + j] == stop[j];
            if (match) return true;
        }

        return false;
    }

    /// <summary>
    /// Logits (B, V) after feeding each sequence's last <paramref name="count"/> tokens (appended to the cache when
    /// given); sequences with fewer tokens are left-padded and masked. With <paramref name="promptLengths"/> (a forward
    /// into an empty cache, or without one), the prompt tokens among those fed are each row's bidirectional prefix.
    /// </summary>
    private Tensor Forward(List<long>[] tokens, int count, KvCache? cache, int[]? promptLengths = null)
    {
        int batch = tokens.Length, take = tokens.Max(t => Math.Min(count, t.Count));
        var ids = new long[batch * take];          // padding: id 0, masked out
        var real = new bool[batch * take];
        var prefix = new long[batch];              // in columns: the padding, then the prompt tokens fed
        bool padded = false;
        for (int b = 0; b < batch; b++)
        {
            int own = Math.Min(count, tokens[b].Count), pad = take - own, first = tokens[b].Count - own;
            tokens[b].CopyTo(first, ids, b * take + pad, own);
            Array.Fill(real, true, b * take + pad, own);
            padded |= pad > 0;
            int promptFed = promptLengths is null ? 0 : Math.Clamp(promptLengths[b] - first, 0, own);
            prefix[b] = promptFed > 0 ? pad + promptFed : 0;
        }

        var device = _model.Device;
        var mask = padded ? torch.tensor(real, batch, take, device: device) : null; // (B, T)
        bool prefixed = prefix.Any(p => p > 1) && (cache is null || cache.Length == 0); // a prefix of one token is causal
        using var output = _model.call(new CausalLMInput(torch.tensor(ids, batch, take, device: device), Cache: cache, RouterStatistics: false, AttentionMask: mask,
            PrefixLength: prefixed ? torch.tensor(prefix, device: device) : null));
        return output.Logits[.., -1].to(ScalarType.Float32); // (B, V): the last position is real in every row
    }

    /// <summary>The repetition, presence and frequency penalties over each row's last tokens; rows whose windows have equal lengths.</summary>
    private static Tensor Penalise(Tensor logits, List<long>[] tokens, SamplingOptions options)
    {
        int w = Math.Min(options.RepetitionWindow, tokens.Min(t => t.Count));
        var recentIds = new long[tokens.Length * w];
        for (int b = 0; b < tokens.Length; b++) tokens[b].CopyTo(tokens[b].Count - w, recentIds, b * w, w);
        var recent = torch.tensor(recentIds, tokens.Length, w, device: logits.device); // (B, W)
        logits = LogitsProcessors.RepetitionPenalty(logits, recent, options.RepetitionPenalty);
        return LogitsProcessors.PresenceFrequencyPenalty(logits, recent, options.PresencePenalty, options.FrequencyPenalty);
    }

    private static long[] Sample(Tensor logits, List<long>[] tokens, SamplingOptions options, int i, torch.Generator? generator)
    {
        foreach (var processor in options.LogitsProcessors)
            logits = processor(logits, tokens) ?? throw new InvalidOperationException("A logits processor returned null.");
        bool penalise = options.RepetitionPenalty != 1.0 || options.PresencePenalty != 0 || options.FrequencyPenalty != 0;
        int look = Math.Min(options.RepetitionWindow, tokens[0].Count);
        if (penalise && tokens.All(t => Math.Min(options.RepetitionWindow, t.Count) == look))
        {
            logits = Penalise(logits, tokens, options);
        }
        else if (penalise)
        {
            // rows shorter than the window (padded prompts) look back over windows of different lengths: one row at a time
            logits = torch.cat(tokens.Select((t, b) => Penalise(logits.narrow(0, b, 1), [t], options)).ToList(), 0); // (B, V)
        }

        Tensor chosen;
        if (options.Greedy)
        {
            chosen = logits.argmax(-1);                                                 // (B)
        }
        else
        {
            logits = logits / options.TemperatureAt(i, options.MaxNewTokens);
            if (options.TopK is { } k) logits = LogitsProcessors.TopK(logits, k);
            if (options.TopP is { } p) logits = LogitsProcessors.TopP(logits, p);
            if (options.MinP is { } m) logits = LogitsProcessors.MinP(logits, m);
            chosen = torch.multinomial(logits.softmax(-1), 1, generator: generator).squeeze(1); // (B)
        }

        return chosen.data<long>().ToArray();
    }
}
