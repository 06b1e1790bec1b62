using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Quantization;
using YingHub.Moe.Training.Checkpointing;
using YingHub.Moe.Training.Diagnostics;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Evaluation;
using YingHub.Moe.Training.Freezing;
using YingHub.Moe.Training.Objectives;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Routing;
using YingHub.Moe.Training.Schedules;
using YingHub.Moe.Training.Tracking;
using static TorchSharp.torch;

namespace YingHub.Moe.Training;

/// <summary>
/// Pre-trains a <see cref="MoeForCausalLM"/> on random blocks of a token corpus, as nanoGPT's <c>train.py</c> loop:
/// each step draws micro-batches, runs the <see cref="OptimizerStep"/> (schedule, accumulation, mixed precision, loss
/// scaling, per-module and global clipping, grouped AdamW), logs <see cref="StepMetrics"/>, adapts top-k, evaluates
/// with <see cref="LossEvaluator"/>, checks early stopping and saves to a <see cref="CheckpointStore"/> (every N
/// steps and every M minutes, at the end and on cancellation). Custom loops (PPO, UL2) use the same parts; see
/// docs/training.md.
/// <para>
/// Every step runs in its own dispose scope, so memory stays flat. The host reads tensors only at log points and
/// evaluations (and once per step for fp16's overflow check). Cancellation stops at a step boundary and saves.
/// </para>
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly MoeForCausalLM _model;
    private readonly BlockSampler _train;
    private readonly BlockSampler? _validation;
    private readonly TrainerOptions _options;
    private readonly ILogger _logger;
    private readonly OptimizerStep _optimizer;
    private readonly ILearningRateSchedule _schedule;
    private readonly TopKController? _topK;
    private readonly DynamicTokenMasker? _masker;
    private readonly EarlyStopping? _earlyStopping;
    private readonly CheckpointStore? _store;
    private readonly BestWeights _best = new();
    private (double Train, double? Validation) _last = (double.NaN, null);
    private long _step;
    private bool _seeded;

    /// <summary>
    /// A trainer of <paramref name="model"/> on <paramref name="train"/> (and <paramref name="validation"/> for
    /// evaluations). Freezes the parameters <see cref="TrainerOptions.Freeze"/> names before building the optimizer.
    /// </summary>
    /// <exception cref="ArgumentException">Invalid options, blocks longer than the model's context, a mask token outside
    /// the vocabulary, a freeze pattern that selects nothing, or adaptive top-k down to 1 with renormalised top-k weights.</exception>
    /// <exception cref="InvalidOperationException">The model is quantized (<see cref="ModelQuantization"/>): a quantized base is frozen.</exception>
    public Trainer(MoeForCausalLM model, BlockSampler train, BlockSampler? validation, TrainerOptions options, ILogger<Trainer>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        ModelQuantization.ThrowIfQuantized(model, "train the model with a Trainer");
        foreach (var sampler in new[] { train, validation })
        {
            if (sampler is not null && sampler.BlockSize > model.Options.ContextLength)
                throw new ArgumentException($"Blocks of {sampler.BlockSize} tokens exceed the model's context length {model.Options.ContextLength}.", nameof(train));
        }

        if (options.TokenMasking is { } masking && masking.MaskTokenId >= model.Options.VocabSize)
            throw new ArgumentException($"TokenMasking.MaskTokenId = {masking.MaskTokenId} is outside the model's vocabulary [0, {model.Options.VocabSize}).", nameof(options));
        if (options.EarlyStopping is not null && validation is null)
            throw new ArgumentException("EarlyStopping needs validation data: pass a validation sampler.", nameof(validation));
        if (options.AdaptiveTopK is { } adaptive)
        {
            if (adaptive.MaxK > model.Options.NumExperts)
                throw new ArgumentException($"AdaptiveTopK.MaxK = {adaptive.MaxK} exceeds the model's {model.Options.NumExperts} experts.", nameof(options));
            if (adaptive.MinK == 1 && model.Options.NormalizeTopKWeights)
                throw new ArgumentException("AdaptiveTopK.MinK = 1 with MoeModelOptions.NormalizeTopKWeights = true (norm_topk_prob): at k = 1 the renormalised " +
                    "gate weight is identically 1, which cuts the router off from the LM loss. Use MinK >= 2, or a model without top-k renormalisation.", nameof(options));
            _topK = new TopKController(adaptive);
        }

        _model = model;
        _train = train;
        _validation = validation;
        _options = options;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        if (options.Freeze.Count > 0)
        {
            var frozen = ParameterFreezing.Freeze(model, options.Freeze);
            _logger.LogInformation("frozen ({Count} tensors): {Names}", frozen.Count, string.Join(", ", frozen));
        }

        _optimizer = new OptimizerStep(model, OptimizerStepOptions.FromTrainerOptions(options));
        _logger.LogInformation("AdamW ({Kind}), groups:{NewLine}{Groups}", _optimizer.Optimizer.IsFused ? "fused kernel" : "per parameter", Environment.NewLine, _optimizer.Optimizer.Describe());
        _schedule = options.CreateSchedule();
        if (options.TokenMasking is { } m) _masker = new DynamicTokenMasker(m);
        if (options.EarlyStopping is { } e) _earlyStopping = new EarlyStopping(e);
        if (options.CheckpointDirectory is { } dir) _store = new CheckpointStore(dir, options.KeepCheckpoints);
    }

    /// <summary>Optimizer steps done (including those of a resumed run).</summary>
    public long Step => _step;

    /// <summary>Whether the run has nothing left to do: all steps done, or early stopping ended it.</summary>
    public bool IsComplete => _step >= _options.Steps || (_earlyStopping?.ShouldStop ?? false);

    /// <summary>The fp16 loss scaler (null in other precisions).</summary>
    public DynamicLossScaler? LossScaler => _optimizer.LossScaler;

    /// <summary>The optimizer step the trainer runs (its groups, norms' labels, state).</summary>
    public OptimizerStep OptimizerStep => _optimizer;

    /// <summary>
    /// What the run trains on: null (the default) is causal LM on the sampler's blocks; an objective mixture (UL2's
    /// denoisers, prefix LM, with stages over the run) rearranges each block into its training sequence. Set it before
    /// <see cref="Run"/>. Evaluation stays causal LM on plain blocks, so validation losses compare across objectives.
    /// </summary>
    /// <exception cref="ArgumentException">Its blocks differ from the sampler's, it writes token ids outside the model's vocabulary, or token masking is on.</exception>
    public TrainingObjective? Objective
    {
        get => _objective;
        set
        {
            if (value is not null)
            {
                if (value.BlockSize != _train.BlockSize)
                    throw new ArgumentException($"The objective is built for blocks of {value.BlockSize} tokens; the sampler draws {_train.BlockSize}.", nameof(value));
                if (value.MaxTokenId >= _model.Options.VocabSize)
                    throw new ArgumentException($"The objective writes token ids up to {value.MaxTokenId} (its tokenizer's special tokens) but the model's vocabulary is [0, {_model.Options.VocabSize}): build the model with vocab_size = the tokenizer's.", nameof(value));
                if (_masker is not null)
                    throw new ArgumentException("TokenMasking and an objective mixture do not combine (masking would overwrite sentinel and mode tokens); use one.", nameof(value));
            }

            _objective = value;
        }
    }

    private TrainingObjective? _objective;

    /// <summary>Adds files (e.g. the tokenizer) to every checkpoint; it receives the staging directory.</summary>
    public Action<string>? CheckpointExtras { get; set; }

    /// <summary>Called at every log point and evaluation (for progress bars, metric files, trackers).</summary>
    public event Action<TrainingProgress>? Progress;

    /// <summary>
    /// Receives the run's parameters when <see cref="Run"/> starts (trainer and model options, parameter counts), the
    /// metrics of every log point and evaluation, and the end status (finished, killed on cancellation, failed on an
    /// exception). Build one with <see cref="TrainingTrackers.Create"/>; the trainer neither disposes it nor minds
    /// which sinks it fans out to.
    /// </summary>
    public ITrainingTracker? Tracker { get; set; }

    /// <inheritdoc />
    public void Dispose()
    {
        _optimizer.Dispose();
        _best.Dispose();
    }

    /// <summary>The run's hyperparameters as flat strings (<c>trainer.*</c>, <c>model.*</c> in the options' JSON names).</summary>
    public IReadOnlyDictionary<string, string> Hyperparameters() => RunParameters.Flatten(_options, _model, _schedule);

    /// <summary>Runs the configured number of steps (or until cancelled, or until early stopping); returns at once when <see cref="IsComplete"/>.</summary>
    public TrainingResult Run(CancellationToken cancellationToken = default)
    {
        Tracker?.LogParameters(Hyperparameters());
        TrainingResult result;
        try
        {
            result = RunSteps(cancellationToken);
        }
        catch
        {
            Tracker?.Complete(TrainingRunStatus.Failed);
            throw;
        }

        Tracker?.Complete(result.Cancelled ? TrainingRunStatus.Killed : TrainingRunStatus.Finished);
        return result;
    }

    private TrainingResult RunSteps(CancellationToken cancellationToken)
    {
        var o = _options;
        if (!_seeded) torch.manual_seed(o.Seed); // a resumed run continues the saved generator state instead
        _seeded = true;
        long tokensPerStep = (long)o.BatchSize * o.GradientAccumulation * _train.BlockSize;
        double flopsPerStep = ModelFlops.TrainingFlopsPerToken(_model, _train.BlockSize) * tokensPerStep;
        var clock = Stopwatch.StartNew();
        var sinceLog = Stopwatch.StartNew();
        var sinceSave = Stopwatch.StartNew();
        long firstStep = _step, lastLogStep = _step;
        bool cancelled = false, stoppedEarly = _earlyStopping?.ShouldStop ?? false;
        _model.train();
        while (_step < o.Steps && !stoppedEarly)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                cancelled = true;
                break;
            }

            long step = _step + 1; // steps count from 1; schedules from 0
            bool logPoint = step % o.LogInterval == 0;
            bool evalPoint = step % o.EvalInterval == 0 || step == o.Steps;
            double lr;
            Dictionary<string, double>? metrics = null;
            using (torch.NewDisposeScope())
            {
                SeedCuda(step);
                CausalLMOutput? output = null;
                var taken = _optimizer.Step(step - 1, micro => (output = Forward(step, micro, logPoint && micro == o.GradientAccumulation - 1)).Loss!);
                lr = taken.LearningRate;
                if (!taken.Taken) _logger.LogWarning("step {Step}: inf/NaN gradients, step skipped; loss scale now {Scale}", step, _optimizer.LossScaler!.Scale);
                if (logPoint)
                {
                    metrics = StepMetrics.Collect(output!, taken.Norms, _optimizer.NormLabels);
                    AdaptTopK(step, metrics);
                    AddRunMetrics(metrics, step, lr, (step - firstStep) * tokensPerStep / clock.Elapsed.TotalSeconds,
                        sinceLog.Elapsed.TotalSeconds / (step - lastLogStep), flopsPerStep);
                    lastLogStep = step;
                    sinceLog.Restart();
                }
            }

            _step = step;
            double tokensPerSecond = (step - firstStep) * tokensPerStep / clock.Elapsed.TotalSeconds;
            if (evalPoint) _last = Evaluate(step, lr, tokensPerSecond, metrics);
            else if (metrics is not null) LogStep(step, lr, metrics);
            if (evalPoint && _earlyStopping is not null && _last.Validation is { } validation) stoppedEarly = CheckEarlyStopping(step, validation);
            if (stoppedEarly) break;
            bool save = step == o.Steps || (o.CheckpointInterval is { } every && step % every == 0)
                        || (o.CheckpointIntervalMinutes is { } minutes && sinceSave.Elapsed.TotalMinutes >= minutes);
            if (save && _store is not null)
            {
                SaveCheckpoint();
                sinceSave.Restart();
            }

            if (evalPoint || save)
            {
                // ms_per_step measures training steps: evaluations and checkpoints are not counted in the next interval
                lastLogStep = step;
                sinceLog.Restart();
            }
        }

        double throughput = (_step - firstStep) * tokensPerStep / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        if (cancelled && _step > firstStep)
        {
            // save before the final evaluation draws batches, so a resumed run continues exactly where training stopped
            if (_store is not null) SaveCheckpoint();
            _last = Evaluate(_step, _schedule.At(_step - 1), throughput, null);
        }

        if (stoppedEarly && _step > firstStep)
        {
            if (_best.HasWeights && o.EarlyStopping!.RestoreBestWeights)
            {
                _best.Restore(_model);
                _logger.LogInformation("restored the weights of step {Step} (validation loss {Loss:F4})", _earlyStopping!.State.BestStep, _earlyStopping.State.BestLoss);
                _last = (EvaluateLoss(_train), _validation is null ? null : EvaluateLoss(_validation));
            }

            if (_store is not null) SaveCheckpoint(); // after the restore: the saved model is the returned one
        }

        _model.train();
        return new TrainingResult(_step, _last.Train, _last.Validation, throughput, cancelled, stoppedEarly, _earlyStopping?.State.BestStep,
            _optimizer.LossScaler?.State.SkippedSteps ?? 0);
    }

    /// <summary>One micro-batch's forward pass (masked inputs, real targets; or the objective's sequences); router statistics only where they are logged.</summary>
    private CausalLMOutput Forward(long step, int micro, bool statistics)
    {
        if (_objective is not null)
        {
            // one draw stream per micro-batch: (step, micro) → a distinct index
            var batch = _objective.Build(_train.NextBlocks(_options.BatchSize), (step - 1) * _options.GradientAccumulation + micro,
                _options.Steps * _options.GradientAccumulation, _options.Seed, _model.Device);
            return _model.call(new CausalLMInput(batch.InputIds, batch.Labels, RouterStatistics: statistics, AttentionMask: batch.AttentionMask, PrefixLength: batch.PrefixLength));
        }

        var (x, y) = _train.Next(_options.BatchSize, _model.Device);                 // (B, T), (B, T)
        if (_masker is not null) x = _masker.Mask(x, step - 1, _options.Steps, null); // inputs only: the targets stay real
        return _model.call(new CausalLMInput(x, y, RouterStatistics: statistics));
    }

    /// <summary>
    /// libtorch in TorchSharp 0.107 cannot read or restore the CUDA generator's state, so on a GPU the trainer seeds it
    /// from (seed, step) before every step instead: a resumed run then draws the same dropout and noise.
    /// </summary>
    private void SeedCuda(long step)
    {
        if (_model.Device.type == DeviceType.CUDA) torch.cuda.manual_seed_all(_options.Seed * 1_000_003 + step);
    }

    private void AdaptTopK(long step, Dictionary<string, double> metrics)
    {
        if (_topK is null || !metrics.TryGetValue(MetricNames.Utilization, out double utilization)) return;
        if (_topK.Update(step, utilization, _model.TopK) is not { } k) return;
        _logger.LogInformation("step {Step}: utilization {Utilization:F2}, top-k {Old} -> {New}", step, utilization, _model.TopK, k);
        _model.TopK = k;
    }

    private void AddRunMetrics(Dictionary<string, double> metrics, long step, double lr, double tokensPerSecond, double secondsPerStep, double flopsPerStep)
    {
        metrics[MetricNames.LearningRate] = lr;
        metrics[MetricNames.TokensPerSecond] = tokensPerSecond;
        metrics[MetricNames.MillisecondsPerStep] = secondsPerStep * 1000;
        metrics[MetricNames.TopK] = _model.TopK;
        double peak = _options.PeakFlopsPerSecond ?? ModelFlops.MeasureMatmulPeak(_optimizer.AutocastType ?? ScalarType.Float32, _model.Device);
        metrics[MetricNames.Mfu] = flopsPerStep / secondsPerStep / peak;
        if (_options.GradientClipSchedule is not null) metrics[MetricNames.GradClip] = _optimizer.GlobalClipAt(step - 1);
        if (_optimizer.LossScaler is { } scaler) metrics[MetricNames.LossScale] = scaler.Scale;
        if (_masker is not null) metrics[MetricNames.MaskProbability] = _masker.ProbabilityAt(step - 1, _options.Steps);
    }

    private void LogStep(long step, double lr, Dictionary<string, double> metrics)
    {
        double loss = metrics[MetricNames.TrainLoss];
        _logger.LogInformation("step {Step}/{Steps}: loss {Loss:F4}, lr {LearningRate:G3}, {TokensPerSecond:N0} tokens/s, {MsPerStep:F1} ms/step, MFU {Mfu:P1}",
            step, _options.Steps, loss, lr, metrics[MetricNames.TokensPerSecond], metrics[MetricNames.MillisecondsPerStep], metrics.GetValueOrDefault(MetricNames.Mfu));
        Report(new TrainingProgress(step, loss, null, lr, metrics[MetricNames.TokensPerSecond], metrics));
    }

    private void Report(TrainingProgress progress)
    {
        if (progress.Metrics is { } metrics) Tracker?.LogMetrics(progress.Step, metrics);
        Progress?.Invoke(progress);
    }

    /// <summary>Mean LM loss over <see cref="TrainerOptions.EvalBatches"/> batches of <paramref name="sampler"/>, in evaluation mode without gradients, in the run's precision.</summary>
    public double EvaluateLoss(BlockSampler sampler) =>
        LossEvaluator.Evaluate(_model, sampler, _options.EvalBatches, _options.BatchSize, _options.Precision).Loss;

    /// <summary>An evaluation; reported with the step's metrics (<paramref name="stepMetrics"/>) when the step was also a log point.</summary>
    private (double Train, double? Validation) Evaluate(long step, double lr, double tokensPerSecond, Dictionary<string, double>? stepMetrics)
    {
        double train = EvaluateLoss(_train);
        double? validation = _validation is null ? null : EvaluateLoss(_validation);
        _logger.LogInformation("step {Step}/{Steps}: train loss {Train:F4}, validation loss {Validation}, lr {LearningRate:G3}, {TokensPerSecond:N0} tokens/s",
            step, _options.Steps, train, validation?.ToString("F4") ?? "n/a", lr, tokensPerSecond);
        var metrics = stepMetrics ?? new Dictionary<string, double>(StringComparer.Ordinal);
        metrics[MetricNames.EvalTrainLoss] = train;
        metrics[MetricNames.LearningRate] = lr;
        metrics[MetricNames.TokensPerSecond] = tokensPerSecond;
        if (validation is { } v) metrics[MetricNames.ValidationLoss] = v;
        Report(new TrainingProgress(step, train, validation, lr, tokensPerSecond, metrics));
        return (train, validation);
    }

    /// <summary>Records a validation loss; keeps the best weights (and saves them to <c>{dir}.best</c>); says whether to stop.</summary>
    private bool CheckEarlyStopping(long step, double validationLoss)
    {
        var decision = _earlyStopping!.Update(step, validationLoss);
        if (decision.Improved)
        {
            if (decision.RestoreBestWeights) _best.Keep(_model);
            if (_store is not null) MoeCheckpoint.Save(_model, _store.Directory + ".best", CheckpointExtras);
        }

        if (decision.ShouldStop)
            _logger.LogInformation("step {Step}: no improvement in {Count} evaluations (best {Best:F4} at step {BestStep}); stopping early",
                step, decision.EvaluationsWithoutImprovement, decision.BestLoss, decision.BestStep);
        return decision.ShouldStop;
    }

    /// <summary>Saves a resumable checkpoint to <see cref="TrainerOptions.CheckpointDirectory"/> (see <see cref="SaveCheckpoint(string)"/>).</summary>
    private void SaveCheckpoint() => Save(_store!);

    /// <summary>
    /// Saves a resumable checkpoint to <paramref name="directory"/> (replaced atomically, see <see cref="CheckpointStore"/>):
    /// the model, the optimizer state, the torch generator state, the blocks each sampler has drawn, the loss scaler,
    /// the top-k controller and early-stopping state with the best weights so far (<c>best_model.safetensors</c>), the
    /// frozen parameter names and the last evaluation, with a SHA-256 of every file. With
    /// <see cref="TrainerOptions.KeepCheckpoints"/> &gt; 1 the previous checkpoints move to <c>{directory}.history/step-N</c>.
    /// </summary>
    public void SaveCheckpoint(string directory) => Save(new CheckpointStore(directory, _options.KeepCheckpoints));

    private void Save(CheckpointStore store)
    {
        var state = new TrainingState
        {
            Step = _step, TrainBlocks = _train.Drawn, ValidationBlocks = _validation?.Drawn ?? 0, EarlyStopping = _earlyStopping?.State,
            TopK = _model.TopK, TopKController = _topK?.State, TrainLoss = double.IsNaN(_last.Train) ? null : _last.Train, ValidationLoss = _last.Validation,
        };
        store.Save(_model, _optimizer, state, staging =>
        {
            _best.Save(staging);
            CheckpointExtras?.Invoke(staging);
        });
        _logger.LogInformation("step {Step}: checkpoint saved to {Directory}", _step, store.Directory);
    }

    /// <summary>
    /// Continues the run saved to <paramref name="directory"/> from its newest complete checkpoint
    /// (<see cref="CheckpointStore.FindNewestComplete"/>): weights, optimizer state, generator state, step, sampler
    /// positions, loss scale, top-k and its controller's cooldown, early-stopping state and best weights, so a run of
    /// 2N steps and a run of N steps, saved and resumed for N more, end bit-identical. The model and samplers must be
    /// built as for the original run (same options, corpus, seeds and frozen parameters).
    /// </summary>
    /// <exception cref="InvalidDataException">No complete checkpoint (a file is missing, truncated or corrupted), or the weights do not match the model.</exception>
    /// <exception cref="ArgumentException">The checkpoint is past this run's steps, or the model's options or frozen
    /// parameters differ from the run's (e.g. another dropout, which no weight shape would reveal); the message lists each difference.</exception>
    public void Resume(string directory)
    {
        string checkpoint = CheckpointStore.FindNewestComplete(directory);
        var peek = CheckpointStore.ReadState(checkpoint);
        if (peek.Step > _options.Steps) throw new ArgumentException($"The checkpoint is at step {peek.Step}, past this run's {_options.Steps} steps.", nameof(directory));
        var state = CheckpointStore.Load(checkpoint, _model, _optimizer);
        _train.Skip(state.TrainBlocks - _train.Drawn);
        _validation?.Skip(state.ValidationBlocks - _validation.Drawn);
        if (state.EarlyStopping is { } early) _earlyStopping?.Restore(early);
        if (state.TopKController is { } controller) _topK?.Restore(controller);
        if (state.TopK is { } topK) _model.TopK = topK;
        _best.Load(checkpoint);
        _last = (state.TrainLoss ?? double.NaN, state.ValidationLoss);
        _step = state.Step;
        _seeded = true;
        _logger.LogInformation("resumed from {Directory} at step {Step}", checkpoint, _step);
    }
}
