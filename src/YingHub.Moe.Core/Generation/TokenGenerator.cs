using TorchSharp;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Generation;

/// <summary>
/// Autoregressive decoding of one sequence with a <see cref="MoeForCausalLM"/>: KV-cache decoding by default
/// (recomputation of the whole window per token when <see cref="SamplingOptions.UseCache"/> is off).
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
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        if (prompt.Count == 0) throw new ArgumentException("The prompt needs at least one token.", nameof(prompt));
        int vocab = _model.Options.VocabSize;
        foreach (long id in prompt)
            if (id < 0 || id >= vocab) throw new ArgumentException($"Prompt token id {id} is outside the vocabulary [0, {vocab}).", nameof(prompt));
        return Decode(prompt, options, cancellationToken);
    }

    private IEnumerable<long> Decode(IReadOnlyList<long> prompt, SamplingOptions options, CancellationToken cancellationToken)
    {
        bool wasTraining = _model.training;
        _model.eval();
        int window = _model.Options.ContextLength;
        int keep = Math.Max(1, (int)(options.SlideKeep * window));
        var tokens = new List<long>(prompt);
        using var generator = options.Seed is { } seed ? new torch.Generator((ulong)seed) : null;
        using var cache = options.UseCache ? _model.CreateCache() : null;
        try
        {
            Tensor? next = null; // the logits (1, V) of the next token
            bool filled = false;
            for (int i = 0; i < options.MaxNewTokens; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                long token;
                using (torch.NewDisposeScope())
                using (torch.no_grad())
                {
                    if (cache is null)
                    {
                        next?.Dispose();
                        next = Forward(Tail(tokens, window), null); // recompute the whole window every token
                    }
                    else if (next is null)
                    {
                        // fill the cache with the prompt, or after a slide with the kept tail, in one forward
                        cache.Reset();
                        next = Forward(Tail(tokens, filled ? keep : window), cache);
                        filled = true;
                    }

                    token = Sample(next, tokens, options, i, generator);
                    tokens.Add(token);
                    if (cache is not null)
                    {
                        next.Dispose();
                        next = cache.Length == window || i + 1 == options.MaxNewTokens ? null : Forward([token], cache);
                    }

                    next?.MoveToOuterDisposeScope();
                }

                yield return token;
            }

            next?.Dispose();
        }
        finally
        {
            if (wasTraining) _model.train();
        }
    }

    private static List<long> Tail(List<long> tokens, int count) =>
        tokens.GetRange(Math.Max(0, tokens.Count - count), Math.Min(count, tokens.Count));

    /// <summary>Logits (1, V) after feeding <paramref name="ids"/>, appended to <paramref name="cache"/> when given.</summary>
    private Tensor Forward(List<long> ids, KvCache? cache)
    {
        using var output = _model.call(new CausalLMInput(torch.tensor(ids.ToArray(), 1, ids.Count), Cache: cache, RouterStatistics: false));
        return output.Logits[.., -1].to(ScalarType.Float32); // (1, V)
    }

    private static long Sample(Tensor logits, List<long> tokens, SamplingOptions options, int i, torch.Generator? generator)
    {
        if (options.RepetitionPenalty != 1.0)
        {
            int w = Math.Min(options.RepetitionWindow, tokens.Count);
            logits = LogitsProcessors.RepetitionPenalty(logits, torch.tensor(tokens.GetRange(tokens.Count - w, w).ToArray(), 1, w), options.RepetitionPenalty);
        }

        if (options.Greedy) return logits.argmax(-1).item<long>();
        logits = logits / options.TemperatureAt(i, options.MaxNewTokens);
        if (options.TopK is { } k) logits = LogitsProcessors.TopK(logits, k);
        if (options.TopP is { } p) logits = LogitsProcessors.TopP(logits, p);
        return torch.multinomial(logits.softmax(-1), 1, generator: generator).item<long>();
    }
}
