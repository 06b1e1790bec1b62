using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Rewards;
using YingHub.Moe.Rl.Algorithms;
using YingHub.Moe.Rl.Curriculum;
using YingHub.Moe.Rl.Diagnostics;
using YingHub.Moe.Rl.Experience;
using YingHub.Moe.Rl.Modules;
using YingHub.Moe.Rl.Rewards;
using YingHub.Moe.Training.Checkpointing;
using YingHub.Moe.Training.Freezing;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Schedules;
using YingHub.Moe.Training.Tracking;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl;

/// <summary>The state of a run after an iteration, for progress bars and logs.</summary>
/// <param name="Iteration">Iterations done.</param>
/// <param name="Iterations">Iterations of the run.</param>
/// <param name="Metrics">The iteration's metrics (<see cref="RlMetricNames"/>).</param>
public sealed record RlhfProgress(long Iteration, long Iterations, IReadOnlyDictionary<string, double> Metrics);

/// <summary>The mean task reward over a fixed prompt set.</summary>
/// <param name="Mean">Mean reward.</param>
/// <param name="StandardError">Standard error of the mean (sample standard deviation / √n); NaN for a single reward.</param>
/// <param name="Count">Responses scored.</param>
public sealed record RewardEvaluation(double Mean, double StandardError, int Count)
{
    /// <summary>The mean and its standard error over <paramref name="rewards"/>.</summary>
    /// <exception cref="ArgumentException">No rewards.</exception>
    public static RewardEvaluation Of(IReadOnlyList<double> rewards)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        if (rewards.Count == 0) throw new ArgumentException("At least one reward is needed.", nameof(rewards));
        double mean = rewards.Average();
        double variance = rewards.Count > 1 ? rewards.Sum(r => (r - mean) * (r - mean)) / (rewards.Count - 1) : double.NaN;
        return new RewardEvaluation(mean, Math.Sqrt(variance / rewards.Count), rewards.Count);
    }
}

/// <summary>The outcome of <see cref="RlhfTrainer.Run"/>.</summary>
/// <param name="Iterations">Iterations done (of a resumed run, all of them).</param>
/// <param name="RewardBefore">Held-out reward of the starting policy, when held-out prompts were given.</param>
/// <param name="RewardAfter">Held-out reward of the trained policy (same prompts, same seed).</param>
/// <param name="Kl">Mean per-sequence KL to the reference at the last iteration.</param>
/// <param name="Beta">The KL coefficient at the end.</param>
/// <param name="Checkpoint">The directory of the last checkpoint, if one was saved.</param>
/// <param name="Cancelled">Whether the run stopped on cancellation.</param>
/// <param name="Collapsed">Whether the collapse guard stopped the run (<see cref="Diagnostics.CollapseGuardOptions.StopOnCollapse"/>).</param>
public sealed record RlhfResult(long Iterations, RewardEvaluation? RewardBefore, RewardEvaluation? RewardAfter, double Kl, double Beta,
    string? Checkpoint, bool Cancelled, bool Collapsed = false);

/// <summary>
/// RLHF fine-tuning of a <see cref="MoeForCausalLM"/> toward a reward, by PPO (value head, GAE, the KL penalty in the
/// reward) or GRPO (group-normalised rewards, the KL in the loss). Each iteration collects a rollout
/// (<see cref="ExperienceCollector"/>), computes per-token rewards and advantages (<see cref="Algorithms"/>), and runs
/// <see cref="RlhfOptions.Epochs"/> passes of shuffled minibatches through the engine's <see cref="OptimizerStep"/>;
/// checkpoints go through the engine's <see cref="CheckpointStore"/>, so the policy's checkpoint is an ordinary model
/// checkpoint. The policy runs in evaluation mode throughout (no dropout or router noise: the ratio of the first
/// minibatch is exactly 1), as TRL does.
/// </summary>
public sealed class RlhfTrainer : IDisposable
{
    /// <summary>The value head's weights in a checkpoint.</summary>
    public const string ValueHeadFile = "value_head.safetensors";

    /// <summary>A separate critic's weights in a checkpoint (<see cref="RlhfOptions.SeparateCritic"/>).</summary>
    public const string CriticFile = "critic.safetensors";

    /// <summary>A separate critic's parameter-name prefix in the optimizer.</summary>
    public const string CriticPrefix = "critic.";

    private const string BetaKey = "rl.beta";
    private const string OptimizerStepsKey = "rl.optimizer_steps";
    private const string ReferenceKey = "rl.reference_sha256";
    private const string AlgorithmKey = "rl.algorithm";
    private const string KlKey = "rl.kl";
    private const string RewardBeforeKey = "rl.reward_before";

    // the held-out reward is a mean of arbitrary rewards: NaN or infinity must survive the checkpoint as they are
    private static readonly JsonSerializerOptions StateJson = new() { NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals };

    private readonly MoeForCausalLM _policy;
    private readonly RlhfOptions _options;
    private readonly ITextTokenizer _tokenizer;
    private readonly IRewardFunction _reward;
    private readonly IReadOnlyList<IReadOnlyList<long>> _prompts;
    private readonly IReadOnlyList<IReadOnlyList<long>>? _heldOut;
    private readonly FrozenReference _reference;
    private readonly CausalLMWithValueHead? _withValue;
    private readonly MoeForCausalLM? _critic;
    private readonly OptimizerStep _optimizer;
    private readonly KlController _kl;
    private readonly ExperienceCollector _collector;
    private readonly CheckpointStore? _store;
    private readonly ILogger _logger;
    private readonly string _referenceHash;
    private long _iteration, _optimizerSteps;
    private double _lastKl = double.NaN;
    private RewardEvaluation? _rewardBefore;
    private bool _resumed, _collapsed;
    private readonly CollapseGuard _collapseGuard;
    private IResponseLengthSchedule _responseLength;

    /// <summary>A trainer for <paramref name="policy"/> (its current weights become the frozen reference).</summary>
    /// <param name="policy">The model to fine-tune, in fp32 (its weights change in place).</param>
    /// <param name="tokenizer">Its tokenizer (responses are decoded before scoring).</param>
    /// <param name="reward">The task reward of a decoded response.</param>
    /// <param name="prompts">Training prompts (token ids); each iteration draws <see cref="RlhfOptions.PromptsPerIteration"/> of them.</param>
    /// <param name="options">The settings.</param>
    /// <param name="heldOutPrompts">Prompts scored before and after training (the first <see cref="RlhfOptions.EvaluationPrompts"/>); null for none.</param>
    /// <param name="logger">Where the run logs.</param>
    /// <exception cref="ArgumentException">Invalid options, no prompts, or a prompt too long for the context with the response.</exception>
    public RlhfTrainer(MoeForCausalLM policy, ITextTokenizer tokenizer, IRewardFunction reward, IReadOnlyList<IReadOnlyList<long>> prompts,
        RlhfOptions options, IReadOnlyList<IReadOnlyList<long>>? heldOutPrompts = null, ILogger<RlhfTrainer>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(reward);
        ArgumentNullException.ThrowIfNull(prompts);
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        if (prompts.Count == 0) throw new ArgumentException("At least one training prompt is needed.", nameof(prompts));
        CheckPrompts(prompts, policy, options, nameof(prompts));
        if (heldOutPrompts is not null) CheckPrompts(heldOutPrompts, policy, options, nameof(heldOutPrompts));
        _policy = policy;
        _options = options;
        _tokenizer = tokenizer;
        _reward = reward;
        _prompts = prompts;
        _heldOut = heldOutPrompts is { Count: > 0 } && options.EvaluationPrompts > 0 ? heldOutPrompts.Take(options.EvaluationPrompts).ToList() : null;
        _logger = (ILogger?)logger ?? NullLogger.Instance;

        if (options.Freeze.Count > 0)
        {
            var frozen = ParameterFreezing.Freeze(policy, options.Freeze);
            _logger.LogInformation("frozen ({Count} tensors): {Names}", frozen.Count, string.Join(", ", frozen));
        }

        _reference = FrozenReference.CopyOf(policy);
        _referenceHash = Fingerprint(_reference.Model);
        _logger.LogInformation("reference model: a frozen copy of the starting policy, {Megabytes:F1} MB of parameters", _reference.ParameterBytes / 1e6);
        if (options.SeparateCritic)
        {
            _critic = FrozenReference.Clone(policy);
            _withValue = new CausalLMWithValueHead(_critic, modelPrefix: CriticPrefix);
            _logger.LogInformation("separate critic: a trainable copy of the starting policy with the value head");
        }
        else if (options.Algorithm == RlAlgorithm.Ppo)
        {
            _withValue = new CausalLMWithValueHead(policy);
        }

        var parameters = _critic is not null ? policy.named_parameters().Concat(_withValue!.NamedParameters()) : _withValue?.NamedParameters() ?? policy.named_parameters();
        double valueMultiplier = (options.ValueLearningRate ?? options.LearningRate) / options.LearningRate;
        _optimizer = new OptimizerStep(parameters, new OptimizerStepOptions
        {
            AdamW = new AdamWGroupOptions
            {
                LearningRate = options.LearningRate, WeightDecay = options.WeightDecay,
                LearningRateGroups = [new LearningRateGroupRule("value_head", [CausalLMWithValueHead.ValueHeadPrefix, CriticPrefix], valueMultiplier)],
            },
            Schedule = new ConstantSchedule(options.LearningRate), GradientClip = options.GradientClip, ModuleGradientClip = options.ModuleGradientClip,
            TotalSteps = Math.Max(1, options.Iterations * options.Epochs * (long)Math.Ceiling((double)options.RolloutSequences / options.MiniBatchSize)),
            Precision = options.Precision,
        });
        _kl = new KlController(options.KlCoef, options.KlTarget, options.KlHorizon);
        _collapseGuard = new CollapseGuard(options.CollapseGuard);
        _responseLength = options.Curriculum is { } curriculum ? ResponseLengthSchedules.Parse(curriculum, options.ResponseTokens) : ResponseLengthSchedules.Constant(options.ResponseTokens);
        _collector = new ExperienceCollector(policy, _withValue?.ValueHead, _reference, tokenizer, reward, _critic);
        if (options.CheckpointDirectory is { } dir) _store = new CheckpointStore(dir);
    }

    /// <summary>Iterations done (including those of a resumed run).</summary>
    public long Iteration => _iteration;

    /// <summary>The current KL coefficient β.</summary>
    public double Beta => _kl.Beta;

    /// <summary>The frozen reference (its <see cref="FrozenReference.ParameterBytes"/> is the memory it costs).</summary>
    public FrozenReference Reference => _reference;

    /// <summary>
    /// The response length of each iteration (a curriculum): from <see cref="RlhfOptions.Curriculum"/>, or
    /// <see cref="RlhfOptions.ResponseTokens"/> throughout; set any schedule (e.g. <see cref="ResponseLengthSchedules.FromFunction"/>).
    /// Its values are capped at <see cref="RlhfOptions.ResponseTokens"/>, which the prompts were checked against.
    /// </summary>
    public IResponseLengthSchedule ResponseLength
    {
        get => _responseLength;
        set => _responseLength = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>The response length of iteration <paramref name="iteration"/> (0-based): the schedule's, capped at <see cref="RlhfOptions.ResponseTokens"/>.</summary>
    /// <exception cref="InvalidOperationException">The schedule gave a length below 1.</exception>
    public int ResponseLengthAt(long iteration)
    {
        int length = _responseLength.LengthAt(iteration);
        if (length < 1) throw new InvalidOperationException($"The response-length schedule gave {length} tokens at iteration {iteration}; lengths must be at least 1.");
        return Math.Min(length, _options.ResponseTokens);
    }

    /// <summary>The separate critic (<see cref="RlhfOptions.SeparateCritic"/>), or null.</summary>
    public MoeForCausalLM? Critic => _critic;

    /// <summary>The value head (PPO), or null (GRPO).</summary>
    public ValueHead? ValueHead => _withValue?.ValueHead;

    /// <summary>The optimizer step (its groups: the policy's, and <c>value_head_*</c> with the value learning rate).</summary>
    public OptimizerStep OptimizerStep => _optimizer;

    /// <summary>Receives the run's parameters, every iteration's metrics and the end status; not disposed by the trainer.</summary>
    public ITrainingTracker? Tracker { get; set; }

    /// <summary>Adds files (e.g. the tokenizer) to every checkpoint; it receives the staging directory.</summary>
    public Action<string>? CheckpointExtras { get; set; }

    /// <summary>Called after every iteration.</summary>
    public event Action<RlhfProgress>? Progress;

    /// <summary>
    /// Runs the remaining iterations: scores the held-out prompts first (unless resumed), then iterates, saving every
    /// <see cref="RlhfOptions.SaveEvery"/> iterations and at the end (also when cancelled), and scores the held-out
    /// prompts again. The policy is in evaluation mode during the run and back in its own mode after.
    /// </summary>
    public RlhfResult Run(CancellationToken cancellationToken = default)
    {
        bool wasTraining = _policy.training;
        Tracker?.LogParameters(Parameters());
        try
        {
            // a resumed run's "before" is the starting policy's, from the checkpoint: the resumed policy is already trained
            if (_heldOut is not null && _rewardBefore is null && !_resumed) _rewardBefore = EvaluateReward(_heldOut, cancellationToken);
            if (_rewardBefore is { } before)
                _logger.LogInformation("held-out reward before: {Mean:F4} ± {Error:F4} over {Count} responses", before.Mean, before.StandardError, before.Count);
            bool cancelled = false;
            while (_iteration < _options.Iterations)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    cancelled = true;
                    break;
                }

                var metrics = RunIteration(cancellationToken);
                Tracker?.LogMetrics(_iteration, metrics);
                Progress?.Invoke(new RlhfProgress(_iteration, _options.Iterations, metrics));
                if (_collapsed) break;
                if (_store is not null && _options.SaveEvery > 0 && _iteration % _options.SaveEvery == 0 && _iteration < _options.Iterations) Save();
            }

            if (_store is not null) Save();
            RewardEvaluation? after = null;
            if (_heldOut is not null && !cancelled)
            {
                after = EvaluateReward(_heldOut, cancellationToken);
                _logger.LogInformation("held-out reward after: {Mean:F4} ± {Error:F4} over {Count} responses", after.Mean, after.StandardError, after.Count);
            }

            Tracker?.Complete(cancelled ? TrainingRunStatus.Killed : TrainingRunStatus.Finished);
            return new RlhfResult(_iteration, _rewardBefore, after, _lastKl, _kl.Beta, _store?.Directory, cancelled, _collapsed);
        }
        catch (OperationCanceledException)
        {
            if (_store is not null) Save();
            Tracker?.Complete(TrainingRunStatus.Killed);
            return new RlhfResult(_iteration, _rewardBefore, null, _lastKl, _kl.Beta, _store?.Directory, Cancelled: true);
        }
        catch
        {
            Tracker?.Complete(TrainingRunStatus.Failed);
            throw;
        }
        finally
        {
            _policy.train(wasTraining);
        }
    }

    /// <summary>
    /// One iteration: a rollout over this iteration's prompts, per-token rewards and advantages, the KL controller's
    /// update, and the policy (and value) update. Returns the iteration's metrics (<see cref="RlMetricNames"/>).
    /// Cancellation stops the rollout (nothing has changed yet, so a checkpoint of the previous iteration stays exact);
    /// once the update has begun it runs to the end of the iteration, for the same reason.
    /// </summary>
    public IReadOnlyDictionary<string, double> RunIteration(CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        long iteration = _iteration;
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
        _policy.eval();
        _withValue?.ValueHead.eval();
        _critic?.eval();
        int responseLength = ResponseLengthAt(iteration);
        var (batch, timings) = _collector.Collect(IterationPrompts(iteration), new RolloutSettings(responseLength, _options.Temperature, RolloutSeed(iteration)), cancellationToken);
        Guard(batch.Texts, iteration, metrics);
        using (batch)
        using (var scope = torch.NewDisposeScope())
        {
            var mask = batch.ResponseMask;                                                                       // (B, R)
            var estimator = _options.EffectiveKlEstimator;
            Tensor kl, advantages;
            Tensor? returns = null;
            using (torch.no_grad())
            {
                kl = Kl.PerToken(batch.OldLogProbs, batch.ReferenceLogProbs, mask, estimator);                   // (B, R)
                if (_withValue is not null)
                {
                    var (rewards, _, penalty) = TokenRewards.Compute(batch.Scores, kl, mask, _kl.Beta);            // (B, R)
                    (advantages, returns) = Advantages.Gae(rewards, batch.Values!, mask, _options.Gamma, _options.Lambda);
                    if (_options.WhitenAdvantages && mask.sum().item<long>() >= 2) advantages = Advantages.Whiten(advantages, mask);
                    metrics[RlMetricNames.KlPenalty] = penalty.sum().item<float>() / batch.Count;
                    metrics[RlMetricNames.ExplainedVariance] = ExplainedVariance(batch.Values!, returns, mask);
                }
                else
                {
                    advantages = Advantages.Grpo(batch.Scores, _options.GroupSize, mask);                          // (B, R)
                }
            }

            double meanKl = kl.sum().item<float>() / batch.Count;                                                   // per sequence
            _lastKl = meanKl;
            if (meanKl < 0)
                _logger.LogWarning("iteration {Iteration}: the mean KL estimate is negative ({Kl:F4}, {Estimator}): the k1 estimator is negative on tokens the policy finds less likely than the reference does, and its mean over a batch is only unbiased in expectation; a value that stays negative means the responses were not sampled from the policy's own distribution (a temperature or filter mismatch) or the batch is too small. It is reported as it is, not clipped.",
                    iteration + 1, meanKl, estimator);

            clock.Restart();
            cancellationToken.ThrowIfCancellationRequested();
            var update = Update(batch, advantages, returns, iteration);
            double updateSeconds = clock.Elapsed.TotalSeconds;
            foreach (var (name, value) in update) metrics[name] = value;
            _kl.Update(meanKl, batch.Count);

            var scores = batch.Scores;
            metrics[RlMetricNames.RewardMean] = scores.mean().item<float>();
            metrics[RlMetricNames.RewardStd] = batch.Count > 1 ? scores.std().item<float>() : 0;
            foreach (var component in batch.RewardComponents.SelectMany(c => c.Keys).Distinct(StringComparer.Ordinal))
                metrics[RlMetricNames.RewardComponentPrefix + component] = batch.RewardComponents.Average(c => c.TryGetValue(component, out double v) ? v : 0);
            metrics[RlMetricNames.Kl] = meanKl;
            metrics[RlMetricNames.Beta] = _kl.Beta;
            metrics[RlMetricNames.ResponseLength] = batch.ResponseLengths().Average();
            metrics[RlMetricNames.ResponseLengthLimit] = responseLength;
            metrics[RlMetricNames.TimeGeneration] = timings.Generation;
            metrics[RlMetricNames.TimeScoring] = timings.Scoring;
            metrics[RlMetricNames.TimeForward] = timings.Forward;
            metrics[RlMetricNames.TimeUpdate] = updateSeconds;
            metrics[RlMetricNames.TokensPerSecond] = timings.GeneratedTokens / (timings.Generation + timings.Scoring + timings.Forward + updateSeconds);
            metrics[RlMetricNames.LearningRate] = _options.LearningRate;
        }

        _iteration = iteration + 1;
        _logger.LogInformation("iteration {Iteration}/{Iterations}: reward {Reward:F4}, kl {Kl:F4}, beta {Beta:F4}, policy loss {PolicyLoss:F4}",
            _iteration, _options.Iterations, metrics[RlMetricNames.RewardMean], metrics[RlMetricNames.Kl], metrics[RlMetricNames.Beta], metrics.GetValueOrDefault(RlMetricNames.PolicyLoss));
        return metrics;
    }

    /// <summary>
    /// The policy's mean task reward over <paramref name="prompts"/>: one response each of
    /// <see cref="RlhfOptions.ResponseTokens"/> tokens, sampled with a fixed seed (the same before and after training).
    /// </summary>
    public RewardEvaluation EvaluateReward(IReadOnlyList<IReadOnlyList<long>> prompts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count == 0) throw new ArgumentException("At least one prompt is needed.", nameof(prompts));
        CheckPrompts(prompts, _policy, _options, nameof(prompts));
        var rewards = new List<double>(prompts.Count);
        int chunk = Math.Max(1, _options.RolloutSequences);
        var generator = new Core.Generation.TokenGenerator(_policy);
        for (int start = 0; start < prompts.Count; start += chunk)
        {
            var part = prompts.Skip(start).Take(chunk).ToList();
            var sampling = new Core.Generation.SamplingOptions { MaxNewTokens = _options.ResponseTokens, Temperature = _options.Temperature, Seed = EvaluationSeed + start };
            var texts = RewardScoring.Decode(_tokenizer, generator.GenerateBatch(part, sampling, cancellationToken));
            rewards.AddRange(_reward.ScoreChecked(texts).Select(r => r.Total));
        }

        return RewardEvaluation.Of(rewards);
    }

    private long EvaluationSeed => _options.Seed + 7_919;

    /// <summary>
    /// Continues the run saved in <paramref name="checkpoint"/> (a directory written by this trainer): loads the policy,
    /// the value head, the optimizer state, β, the iteration and the held-out reward before training. Build the trainer
    /// with the run's starting model (the reference is a copy of it; the checkpoint records its fingerprint and refuses
    /// another) and the same options.
    /// </summary>
    /// <exception cref="ArgumentException">The checkpoint is of another algorithm or another reference.</exception>
    public void Resume(string checkpoint)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkpoint);
        var saved = CheckpointStore.ReadState(checkpoint);
        var extra = saved.Extra ?? [];
        if (!extra.TryGetValue(AlgorithmKey, out string? algorithm) || algorithm != _options.Algorithm.ToString())
            throw new ArgumentException($"Checkpoint '{checkpoint}' is not a {_options.Algorithm} run of this trainer (its algorithm: {algorithm ?? "none"}).", nameof(checkpoint));
        if (!extra.TryGetValue(ReferenceKey, out string? reference) || reference != _referenceHash)
            throw new ArgumentException($"Checkpoint '{checkpoint}' was trained against another reference model: build the trainer from the run's starting checkpoint to resume it.", nameof(checkpoint));
        var state = CheckpointStore.Load(checkpoint, _policy, _optimizer);
        if (_withValue is not null) MoeCheckpoint.LoadWeights(_withValue.ValueHead, Path.Combine(checkpoint, ValueHeadFile), strict: true, verifyChecksum: false);
        if (_critic is not null) MoeCheckpoint.LoadWeights(_critic, Path.Combine(checkpoint, CriticFile), strict: true, verifyChecksum: false);
        _kl.Restore(double.Parse(extra[BetaKey], CultureInfo.InvariantCulture));
        _optimizerSteps = long.Parse(extra[OptimizerStepsKey], CultureInfo.InvariantCulture);
        _lastKl = extra.TryGetValue(KlKey, out string? kl) ? double.Parse(kl, CultureInfo.InvariantCulture) : double.NaN;
        _iteration = state.Step;
        _rewardBefore = extra.TryGetValue(RewardBeforeKey, out string? before) ? JsonSerializer.Deserialize<RewardEvaluation>(before, StateJson) : null;
        _resumed = true;
        _logger.LogInformation("resumed from '{Checkpoint}' at iteration {Iteration}, beta {Beta}", checkpoint, _iteration, _kl.Beta);
    }

    /// <summary>Saves a checkpoint now (policy, value head, optimizer, β, iteration, held-out reward before training, RNG), atomically.</summary>
    /// <exception cref="InvalidOperationException">No <see cref="RlhfOptions.CheckpointDirectory"/>.</exception>
    public void Save()
    {
        if (_store is null) throw new InvalidOperationException("RlhfOptions.CheckpointDirectory is not set.");
        var state = new TrainingState
        {
            Step = _iteration,
            Extra = new Dictionary<string, string>
            {
                [AlgorithmKey] = _options.Algorithm.ToString(),
                [BetaKey] = _kl.Beta.ToString("R", CultureInfo.InvariantCulture),
                [OptimizerStepsKey] = _optimizerSteps.ToString(CultureInfo.InvariantCulture),
                [ReferenceKey] = _referenceHash,
                [KlKey] = _lastKl.ToString("R", CultureInfo.InvariantCulture),
            },
        };
        if (_rewardBefore is { } before) state.Extra[RewardBeforeKey] = JsonSerializer.Serialize(before, StateJson);
        _store.Save(_policy, _optimizer, state, staging =>
        {
            if (_withValue is not null)
            {
                using var scope = torch.NewDisposeScope();
                Safetensors.Write(Path.Combine(staging, ValueHeadFile), _withValue.ValueHead.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu().contiguous()));
                if (_critic is not null) Safetensors.Write(Path.Combine(staging, CriticFile), _critic.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu().contiguous()));
            }

            CheckpointExtras?.Invoke(staging);
        });
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _optimizer.Dispose();
        _withValue?.Dispose();
        _critic?.Dispose();
        _reference.Dispose();
    }

    /// <summary>Epochs of shuffled minibatches over the rollout; returns the update's metrics.</summary>
    private Dictionary<string, double> Update(ExperienceBatch batch, Tensor advantages, Tensor? returns, long iteration)
    {
        int b = batch.Count, p = batch.PromptColumns, r = batch.ResponseColumns;
        long t = batch.Sequences.size(1);
        var o = _policy.Options;
        var labels = _options.AuxiliaryLosses ? AuxiliaryLabels(batch) : null;                 // (B, P + R): the positions that predict response tokens
        var sums = new Dictionary<string, double>(StringComparer.Ordinal);
        int minibatches = 0;
        bool stopped = false;
        using var shuffle = new torch.Generator((ulong)(_options.Seed * 1_000_003 + iteration), batch.Sequences.device);
        for (int epoch = 0; epoch < _options.Epochs && !stopped; epoch++)
        {
            var order = torch.randperm(b, generator: shuffle).to(batch.Sequences.device);      // (B)
            for (int start = 0; start < b && !stopped; start += _options.MiniBatchSize)
            {
                using var scope = torch.NewDisposeScope();
                var rows = order.narrow(0, start, Math.Min(_options.MiniBatchSize, b - start));  // (m)
                var mask = batch.ResponseMask.index_select(0, rows);                             // (m, R)
                var rollout = batch.Routing.Select(e => RoutingReplay.SelectRows(e, b, t, rows)).ToList();      // per MoE layer (m·T, k)
                var input = new CausalLMInput(batch.Sequences.index_select(0, rows), Labels: labels?.index_select(0, rows),
                    AttentionMask: batch.AttentionMask.index_select(0, rows), RouterStatistics: false, OutputRouterLogits: true,
                    RoutingReplay: _options.RoutingReplay ? rollout : null);
                var values = new Dictionary<string, Tensor>(StringComparer.Ordinal);
                var step = _optimizer.Step(_optimizerSteps, _ =>
                {
                    CausalLMOutput output;
                    Tensor? v = null;
                    if (_critic is not null)
                    {
                        output = _policy.call(input);
                        // the critic routes its own way: no replay, no labels, no router outputs
                        (var criticOutput, v) = _withValue!.Forward(new CausalLMInput(input.InputIds, AttentionMask: input.AttentionMask, RouterStatistics: false));
                        criticOutput.Dispose();
                    }
                    else if (_withValue is not null) (output, v) = _withValue.Forward(input, _options.ValueLossTrainsPolicy);
                    else output = _policy.call(input);
                    var logProbs = ResponseLogProbs.Gather(output.Logits, p, batch.ResponseTokens.index_select(0, rows), mask, _options.Temperature); // (m, R)
                    var policy = PpoLosses.Policy(logProbs, batch.OldLogProbs.index_select(0, rows), advantages.index_select(0, rows), mask, _options.ClipRange);
                    var loss = policy.Loss;
                    values[RlMetricNames.PolicyLoss] = policy.Loss.detach();
                    values[RlMetricNames.ClipFraction] = policy.ClipFraction;
                    values[RlMetricNames.ApproxKl] = policy.ApproxKl;
                    if (v is not null)
                    {
                        var value = PpoLosses.Value(ResponseLogProbs.Slice(v, p, r), batch.Values!.index_select(0, rows), returns!.index_select(0, rows), mask, _options.ValueClipRange);
                        loss = loss + _options.ValueLossCoef * value.Loss;
                        values[RlMetricNames.ValueLoss] = value.Loss.detach();
                        values[RlMetricNames.ValueClipFraction] = value.ClipFraction;
                    }

                    using (_options.EntropyCoef > 0 ? null : torch.no_grad())
                    {
                        var entropy = PpoLosses.MaskedMean(ResponseLogProbs.Entropy(output.Logits, p, mask, _options.Temperature), mask);
                        if (_options.EntropyCoef > 0) loss = loss - _options.EntropyCoef * entropy;
                        values[RlMetricNames.Entropy] = entropy.detach();
                    }

                    if (_options.Algorithm == RlAlgorithm.Grpo)
                    {
                        var kl = PpoLosses.MaskedMean(Kl.PerToken(logProbs, batch.ReferenceLogProbs.index_select(0, rows), mask, _options.EffectiveKlEstimator), mask);
                        loss = loss + _kl.Beta * kl;
                        values[RlMetricNames.KlLoss] = kl.detach() * _kl.Beta;
                    }

                    if (labels is not null)
                    {
                        var aux = output.LoadBalancingLoss * o.LoadBalancingCoef + output.ZLoss * o.ZLossCoef + output.UtilizationKlLoss * o.UtilizationKlCoef;
                        loss = loss + aux;
                        values[RlMetricNames.AuxLoss] = aux.detach();
                    }

                    (values[RlMetricNames.RoutingChange], values[RlMetricNames.RoutingChangeUsed]) = RoutingChange(output.Routing!, rollout, t, p, mask);
                    return loss;
                });
                _optimizerSteps++;
                minibatches++;
                values[RlMetricNames.GradNorm] = step.Norms[0];
                foreach (var (name, value) in values) sums[name] = sums.GetValueOrDefault(name) + value.item<float>();
                if (_options.TargetApproxKl is { } target && values[RlMetricNames.ApproxKl].item<float>() > target) stopped = true;
            }
        }

        var metrics = sums.ToDictionary(kv => kv.Key, kv => kv.Value / minibatches, StringComparer.Ordinal);
        metrics[RlMetricNames.EarlyStopped] = stopped ? 1 : 0;
        return metrics;
    }

    /// <summary>Labels that make the forward's auxiliary losses count exactly the positions that predict response tokens (B, P + R), -100 elsewhere.</summary>
    private static Tensor AuxiliaryLabels(ExperienceBatch batch)
    {
        using var scope = torch.NewDisposeScope();
        var labels = torch.full_like(batch.Sequences, -100L);                                          // (B, P + R)
        ResponseLogProbs.Slice(labels, batch.PromptColumns, batch.ResponseColumns)
            .copy_(batch.ResponseTokens.masked_fill(batch.ResponseMask.logical_not(), -100L));          // (B, R)
        return labels.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Over the positions that predict response tokens and every MoE layer: the share whose current router, without
    /// noise, would pick another expert set than the rollout did (what routing replay holds fixed), and the share whose
    /// forward used another set (0 under replay).
    /// </summary>
    private static (Tensor Natural, Tensor Used) RoutingChange(IReadOnlyList<MoeLayerRouting> current, IReadOnlyList<Tensor> rollout, long t, int p, Tensor mask)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var counted = torch.zeros(mask.size(0), t, dtype: ScalarType.Bool, device: mask.device);       // (m, P + R)
        ResponseLogProbs.Slice(counted, p, (int)mask.size(1)).copy_(mask);
        var natural = torch.zeros([], dtype: ScalarType.Float32, device: mask.device);
        var used = torch.zeros([], dtype: ScalarType.Float32, device: mask.device);
        for (int layer = 0; layer < current.Count; layer++)
        {
            int k = (int)current[layer].SelectedExperts.size(1);
            natural = natural + RoutingReplay.ChangeRate(rollout[layer], current[layer].Logits.topk(k, dim: -1).indexes, counted);
            used = used + RoutingReplay.ChangeRate(rollout[layer], current[layer].SelectedExperts, counted);
        }

        int layers = Math.Max(1, current.Count);
        return ((natural / layers).MoveToOuterDisposeScope(), (used / layers).MoveToOuterDisposeScope());
    }

    /// <summary>The collapse guard over the rollout's responses: metrics, a warning when flagged, and the stop flag.</summary>
    private void Guard(IReadOnlyList<string> texts, long iteration, Dictionary<string, double> metrics)
    {
        var collapse = CollapseMetrics.OfTexts(texts);
        metrics[RlMetricNames.CollapseIdenticalShare] = collapse.IdenticalShare;
        metrics[RlMetricNames.CollapseDistinct2] = collapse.Distinct2;
        metrics[RlMetricNames.CollapseDistinct3] = collapse.Distinct3;
        metrics[RlMetricNames.CollapseRepeatedNgramRate] = collapse.RepeatedNgramRate;
        var verdict = _collapseGuard.Check(collapse);
        metrics[RlMetricNames.CollapseFlagged] = verdict.Status == CollapseStatus.Healthy ? 0 : 1;
        if (verdict.Status == CollapseStatus.Healthy) return;
        _logger.LogWarning("iteration {Iteration}: the responses look collapsed ({Status}): {Reasons}{Stop}", iteration + 1, verdict.Status,
            string.Join("; ", verdict.Reasons), verdict.ShouldStop ? "; stopping the run (CollapseGuard.StopOnCollapse)" : "");
        _collapsed |= verdict.ShouldStop;
    }

    private static double ExplainedVariance(Tensor values, Tensor returns, Tensor mask)
    {
        using var scope = torch.NewDisposeScope();
        var m = mask.to(ScalarType.Bool);
        var y = returns.masked_select(m);
        var residual = y - values.masked_select(m);
        double variance = y.var().item<float>();
        return variance > 0 ? 1 - residual.var().item<float>() / variance : double.NaN;
    }

    /// <summary>This iteration's prompts: a draw without replacement (seeded by the iteration, so a resumed run draws the same), each repeated G times.</summary>
    private List<IReadOnlyList<long>> IterationPrompts(long iteration)
    {
        var random = new Random(unchecked((int)(_options.Seed * 31 + iteration)));
        var order = Enumerable.Range(0, _prompts.Count).ToArray();
        random.Shuffle(order);
        var chosen = new List<IReadOnlyList<long>>(_options.RolloutSequences);
        for (int i = 0; i < _options.PromptsPerIteration; i++)
            for (int g = 0; g < _options.GroupSize; g++) chosen.Add(_prompts[order[i % order.Length]]);
        return chosen;
    }

    private long RolloutSeed(long iteration) => _options.Seed + 1 + iteration;

    private static void CheckPrompts(IReadOnlyList<IReadOnlyList<long>> prompts, MoeForCausalLM policy, RlhfOptions options, string name)
    {
        int limit = policy.Options.ContextLength - options.ResponseTokens;
        for (int i = 0; i < prompts.Count; i++)
        {
            if (prompts[i] is not { Count: > 0 } prompt) throw new ArgumentException($"Prompt {i} is empty or null.", name);
            if (prompt.Count > limit)
                throw new ArgumentException($"Prompt {i} has {prompt.Count} tokens; with ResponseTokens = {options.ResponseTokens} at most {limit} fit the context length {policy.Options.ContextLength}.", name);
        }
    }

    /// <summary>SHA-256 over the parameters' names and bytes: which reference a checkpoint was trained against.</summary>
    private static string Fingerprint(MoeForCausalLM model)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (name, parameter) in model.named_parameters())
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            using var cpu = parameter.detach().cpu().contiguous();
            hash.AppendData(cpu.bytes);
        }

        return Convert.ToHexString(hash.GetHashAndReset());
    }

    private Dictionary<string, string> Parameters()
    {
        var parameters = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in typeof(RlhfOptions).GetProperties())
        {
            object? value = property.GetValue(_options);
            parameters["rl." + property.Name] = value switch
            {
                null => "null",
                IEnumerable<string> list => string.Join(",", list),
                IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
                _ => value.ToString() ?? "",
            };
        }

        parameters["rl.reference_bytes"] = _reference.ParameterBytes.ToString(CultureInfo.InvariantCulture);
        return parameters;
    }
}
