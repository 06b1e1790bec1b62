using TorchSharp;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Generation;

/// <summary>
/// Autoregressive decoding with a <see cref="MoeForCausalLM"/>, one sequence or a batch: KV-cache decoding by default
/// (recomputation of the whole window per token when <see cref="SamplingOptions.UseCache"/> is off).
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
    /// Generates for a batch of prompts of equal length (e.g. RL rollouts from one prompt). A sequence that produces a
    /// stop sequence stops there; the others go on. Returns each sequence's new tokens.
    /// </summary>
    /// <exception cref="ArgumentException">No prompts, prompts of different lengths, a bad token id, or invalid options.</exception>
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
            if (p.Count == 0) throw new ArgumentException("A prompt needs at least one token.", nameof(prompts));
            if (p.Count != prompts[0].Count)
                throw new ArgumentException($"Batched prompts must have equal lengths; prompt {b} has {p.Count} tokens, prompt 0 has {prompts[0].Count}.", nameof(prompts));
            foreach (long id in p)
                if (id < 0 || id >= vocab) throw new ArgumentException($"Prompt token id {id} is outside the vocabulary [0, {vocab}).", nameof(prompts));
        }
    }

    /// <summary>Yields, per step, each sequence's new token, or -1 for a sequence that has already stopped.</summary>
    private IEnumerable<long[]> Decode(IReadOnlyList<IReadOnlyList<long>> prompts, SamplingOptions options, CancellationToken cancellationToken)
    {
        bool wasTraining = _model.training;
        _model.eval();
        int batch = prompts.Count, window = _model.Options.ContextLength;
        int keep = Math.Max(1, (int)(options.SlideKeep * window));
        var tokens = prompts.Select(p => new List<long>(p)).ToArray();
        var done = new bool[batch];
        using var generator = options.Seed is { } seed ? new torch.Generator((ulong)seed, _model.Device) : null;
        using var cache = options.UseCache ? _model.CreateCache(batch) : null;
        Tensor? next = null; // logits (B, V) of the next tokens
        try
        {
            bool filled = false;
            for (int i = 0; i < options.MaxNewTokens && !done.All(d => d); i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                long[] sampled;
                using (torch.NewDisposeScope())
                using (torch.inference_mode()) // no autograd, and no view tracking or version counters: less work per op than no_grad
                {
                    if (cache is null)
                    {
                        next?.Dispose();
                        next = Forward(tokens, window, null); // recompute the whole window every token
                    }
                    else if (next is null)
                    {
                        // fill the cache with the prompts, or after a slide with the kept tails, in one forward
                        cache.Reset();
                        next = Forward(tokens, filled ? keep : window, cache);
                        filled = true;
                    }

                    sampled = Sample(next, tokens, options, i, generator);
                    for (int b = 0; b < batch; b++) tokens[b].Add(sampled[b]); // stopped sequences go on being fed (their output is dropped)
                    if (cache is not null)
                    {
                        next.Dispose();
                        next = cache.Length == window || i + 1 == options.MaxNewTokens
                            ? null
                            : Forward(tokens, 1, cache);
                    }

                    next?.DetachFromDisposeScope(); // ours until the next step, whatever scope the caller has open
                }

                var step = new long[batch];
                for (int b = 0; b < batch; b++)
                {
                    step[b] = done[b] ? -1 : sampled[b];
                    if (!done[b] && EndsWithStop(tokens[b], prompts[b].Count, options.StopSequences)) done[b] = true;
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

    private static bool EndsWithStop(List<long> tokens, int promptLength, IList<long[]> stops)
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

    /// <summary>Logits (B, V) after feeding each sequence's last <paramref name="count"/> tokens (appended to the cache when given).</summary>
    private Tensor Forward(List<long>[] tokens, int count, KvCache? cache)
    {
        int take = Math.Min(count, tokens[0].Count);
        var ids = new long[tokens.Length * take];
        for (int b = 0; b < tokens.Length; b++) tokens[b].CopyTo(tokens[b].Count - take, ids, b * take, take);
        using var output = _model.call(new CausalLMInput(torch.tensor(ids, tokens.Length, take, device: _model.Device), Cache: cache, RouterStatistics: false));
        return output.Logits[.., -1].to(ScalarType.Float32); // (B, V)
    }

    private static long[] Sample(Tensor logits, List<long>[] tokens, SamplingOptions options, int i, torch.Generator? generator)
    {
        foreach (var processor in options.LogitsProcessors)
            logits = processor(logits, tokens) ?? throw new InvalidOperationException("A logits processor returned null.");
        bool penalise = options.RepetitionPenalty != 1.0 || options.PresencePenalty != 0 || options.FrequencyPenalty != 0;
        if (penalise)
        {
            int w = Math.Min(options.RepetitionWindow, tokens[0].Count);
            var recentIds = new long[tokens.Length * w];
            for (int b = 0; b < tokens.Length; b++) tokens[b].CopyTo(tokens[b].Count - w, recentIds, b * w, w);
            var recent = torch.tensor(recentIds, tokens.Length, w, device: logits.device); // (B, W)
            logits = LogitsProcessors.RepetitionPenalty(logits, recent, options.RepetitionPenalty);
            logits = LogitsProcessors.PresenceFrequencyPenalty(logits, recent, options.PresencePenalty, options.FrequencyPenalty);
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
