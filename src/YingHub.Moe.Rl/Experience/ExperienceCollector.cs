using System.Diagnostics;
using TorchSharp;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Rewards;
using YingHub.Moe.Rl.Modules;
using YingHub.Moe.Rl.Rewards;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Experience;

/// <summary>How a rollout samples.</summary>
/// <param name="ResponseTokens">New tokens per response, ≥ 1 (prompt + response must fit the context).</param>
/// <param name="Temperature">Sampling temperature, &gt; 0; the log-probabilities use the same.</param>
/// <param name="Seed">Seed of the sampling.</param>
/// <param name="StopSequences">Token sequences that end a response early (included in it); none by default.</param>
public sealed record RolloutSettings(int ResponseTokens, double Temperature, long Seed, IReadOnlyList<long[]>? StopSequences = null);

/// <summary>Wall-clock split of one rollout, in seconds.</summary>
/// <param name="Generation">Batched KV-cache sampling.</param>
/// <param name="Scoring">Decoding and the reward.</param>
/// <param name="Forward">The teacher-forced forwards of the policy (log-probs, values, routing) and the reference.</param>
/// <param name="GeneratedTokens">Response tokens sampled.</param>
public sealed record RolloutTimings(double Generation, double Scoring, double Forward, long GeneratedTokens);

/// <summary>
/// Fills an <see cref="ExperienceBatch"/>: samples responses with batched KV-cache generation, decodes and scores them
/// with the reward, then runs one teacher-forced forward of the policy (evaluation mode: log-probabilities, values,
/// each position's experts) and one of the frozen reference (its log-probabilities).
/// </summary>
public sealed class ExperienceCollector
{
    private readonly MoeForCausalLM _policy;
    private readonly ValueHead? _valueHead;
    private readonly MoeForCausalLM? _critic;
    private readonly FrozenReference _reference;
    private readonly ITextTokenizer _tokenizer;
    private readonly IRewardFunction _reward;

    /// <summary>A collector for <paramref name="policy"/> (with <paramref name="valueHead"/> for PPO's values, or none for GRPO).</summary>
    /// <param name="policy">The policy that samples and whose log-probs and routing are recorded.</param>
    /// <param name="valueHead">The value head (PPO), on the policy's final hidden states, or on <paramref name="critic"/>'s when given; null: no values (GRPO).</param>
    /// <param name="reference">The frozen reference.</param>
    /// <param name="tokenizer">Decodes responses for the reward.</param>
    /// <param name="reward">Scores the decoded responses.</param>
    /// <param name="critic">A separate critic model under the value head, or null for the policy's own hidden states.</param>
    public ExperienceCollector(MoeForCausalLM policy, ValueHead? valueHead, FrozenReference reference, ITextTokenizer tokenizer, IRewardFunction reward,
        MoeForCausalLM? critic = null)
    {
        if (critic is not null && valueHead is null) throw new ArgumentException("A critic needs a value head.", nameof(critic));
        _critic = critic;
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(reward);
        if (tokenizer.VocabSize > policy.Options.VocabSize)
            throw new ArgumentException($"The tokenizer has {tokenizer.VocabSize} ids; the model only {policy.Options.VocabSize}.", nameof(tokenizer));
        _policy = policy;
        _valueHead = valueHead;
        _reference = reference;
        _tokenizer = tokenizer;
        _reward = reward;
    }

    /// <summary>
    /// One rollout over <paramref name="prompts"/> (each sampled once; repeat a prompt for a group). The policy is left
    /// in the mode it was in.
    /// </summary>
    /// <exception cref="ArgumentException">No prompts, an empty prompt, or a prompt too long for the context with the response.</exception>
    public (ExperienceBatch Batch, RolloutTimings Timings) Collect(IReadOnlyList<IReadOnlyList<long>> prompts, RolloutSettings settings, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(settings);
        if (prompts.Count == 0) throw new ArgumentException("At least one prompt is needed.", nameof(prompts));
        int context = _policy.Options.ContextLength;
        for (int i = 0; i < prompts.Count; i++)
        {
            if (prompts[i] is not { Count: > 0 } p) throw new ArgumentException($"Prompt {i} is empty or null.", nameof(prompts));
            if (p.Count + settings.ResponseTokens > context)
                throw new ArgumentException($"Prompt {i} has {p.Count} tokens; with {settings.ResponseTokens} response tokens that exceeds the context length {context}. Shorten the prompts or the responses.", nameof(prompts));
        }

        var clock = Stopwatch.StartNew();
        var sampling = new SamplingOptions
        {
            MaxNewTokens = settings.ResponseTokens, Temperature = settings.Temperature, Seed = settings.Seed,
            StopSequences = [.. settings.StopSequences ?? []],
        };
        long[][] responses = new TokenGenerator(_policy).GenerateBatch(prompts, sampling, cancellationToken);
        double generation = clock.Elapsed.TotalSeconds;

        clock.Restart();
        var texts = RewardScoring.Decode(_tokenizer, responses);
        var results = _reward.ScoreChecked(texts);
        double scoring = clock.Elapsed.TotalSeconds;

        cancellationToken.ThrowIfCancellationRequested();
        clock.Restart();
        var batch = Forward(prompts, responses, settings.Temperature, results, texts);
        return (batch, new RolloutTimings(generation, scoring, clock.Elapsed.TotalSeconds, responses.Sum(r => (long)r.Length)));
    }

    /// <summary>The hidden states the value head reads (B, T, C): the policy's, or a separate critic's own forward (evaluation mode).</summary>
    private Tensor CriticHidden(CausalLMOutput policyOutput, Tensor sequences, Tensor mask)
    {
        if (_critic is null) return policyOutput.LastHiddenState!;
        _critic.eval();
        using var critic = _critic.call(new CausalLMInput(sequences, AttentionMask: mask, RouterStatistics: false, OutputHiddenStates: true));
        return critic.LastHiddenState!.detach().clone();
    }

    private ExperienceBatch Forward(IReadOnlyList<IReadOnlyList<long>> prompts, long[][] responses, double temperature, IReadOnlyList<RewardResult> results, string[] texts)
    {
        int b = prompts.Count, p = prompts.Max(x => x.Count), r = responses.Max(x => x.Length), t = p + r;
        var ids = new long[b * t];
        var real = new bool[b * t];
        var responseIds = new long[b * r];
        var responseReal = new bool[b * r];
        for (int row = 0; row < b; row++)
        {
            var prompt = prompts[row];
            int pad = p - prompt.Count;
            for (int j = 0; j < prompt.Count; j++) (ids[row * t + pad + j], real[row * t + pad + j]) = (prompt[j], true);   // left-padded prompt
            for (int j = 0; j < responses[row].Length; j++)
            {
                (ids[row * t + p + j], real[row * t + p + j]) = (responses[row][j], true);                                   // right-padded response
                (responseIds[row * r + j], responseReal[row * r + j]) = (responses[row][j], true);
            }
        }

        var device = _policy.Device;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var sequences = torch.tensor(ids, b, t, device: device);                          // (B, P + R)
        var mask = torch.tensor(real, b, t, device: device);                              // (B, P + R)
        var responseTokens = torch.tensor(responseIds, b, r, device: device);             // (B, R)
        var responseMask = torch.tensor(responseReal, b, r, device: device);              // (B, R)

        bool policyTraining = _policy.training, headTraining = _valueHead?.training ?? false, criticTraining = _critic?.training ?? false;
        _policy.eval(); // the rollout's own distribution: no dropout, no router noise
        Tensor oldLogProbs, values;
        IReadOnlyList<Tensor> routing;
        Tensor? valueOut = null;
        try
        {
            using var output = _policy.call(new CausalLMInput(sequences, AttentionMask: mask, RouterStatistics: false,
                OutputRouterLogits: true, OutputHiddenStates: _valueHead is not null));
            oldLogProbs = ResponseLogProbs.Gather(output.Logits, p, responseTokens, responseMask, temperature);   // (B, R)
            routing = output.Routing!.Select(x => x.SelectedExperts.clone()).ToList();                            // per layer (B·(P + R), k)
            if (_valueHead is not null)
            {
                _valueHead.eval();
                values = ResponseLogProbs.Slice(_valueHead.call(CriticHidden(output, sequences, mask)), p, r);      // (B, R)
                valueOut = values.masked_fill(responseMask.logical_not(), 0);
            }
        }
        finally
        {
            _policy.train(policyTraining);
            _valueHead?.train(headTraining);
            _critic?.train(criticTraining);
        }

        Tensor referenceLogProbs;
        using (var reference = _reference.Model.call(new CausalLMInput(sequences, AttentionMask: mask, RouterStatistics: false)))
            referenceLogProbs = ResponseLogProbs.Gather(reference.Logits, p, responseTokens, responseMask, temperature); // (B, R)

        var scores = torch.tensor(results.Select(x => (float)x.Total).ToArray(), device: device);                // (B)
        foreach (var x in routing) x.MoveToOuterDisposeScope();
        return new ExperienceBatch(sequences.MoveToOuterDisposeScope(), mask.MoveToOuterDisposeScope(), p,
            responseTokens.MoveToOuterDisposeScope(), responseMask.MoveToOuterDisposeScope(), oldLogProbs.MoveToOuterDisposeScope(),
            referenceLogProbs.MoveToOuterDisposeScope(), valueOut?.MoveToOuterDisposeScope(), scores.MoveToOuterDisposeScope(), routing,
            texts, results.Select(x => x.Components).ToList());
    }
}
