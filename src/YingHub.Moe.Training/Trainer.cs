using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Precision;
using YingHub.Moe.Training.Diagnostics;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Routing;
using YingHub.Moe.Training.Schedules;
using YingHub.Moe.Training.Tracking;
using static TorchSharp.torch;

namespace YingHub.Moe.Training;

/// <summary>One evaluation or log point of a training run.</summary>
/// <param name="Step">Optimizer steps done.</param>
/// <param name="TrainLoss">LM loss on training batches (the last micro-batch at a log point; a mean of batches at an evaluation).</param>
/// <param name="ValidationLoss">Mean LM loss on validation batches, at evaluations (null at log points, or without validation data).</param>
/// <param name="LearningRate">The learning rate of the step.</param>
/// <param name="TokensPerSecond">Training tokens per second since the start of the run.</param>
/// <param name="Metrics">
/// Everything measured at this point, by metric name (<c>train/loss</c>, <c>val/loss</c>, <c>lr</c>,
/// <c>grad_norm/global</c>, <c>grad_norm/{group}</c> before clipping, <c>aux/load_balancing</c>, <c>aux/z_loss</c>,
/// <c>utilization</c>, <c>top_k</c>, <c>tokens_per_s</c>, <c>ms_per_step</c>, <c>mfu</c>, <c>loss_scale</c>,
/// <c>expert_load/{layer}/{expert}</c>, ...); empty when the point was made by hand.
/// </param>
public sealed record TrainingProgress(long Step, double TrainLoss, double? ValidationLoss, double LearningRate, double TokensPerSecond,
    IReadOnlyDictionary<string, double>? Metrics = null);

/// <summary>The outcome of <see cref="Trainer.Run"/>.</summary>
/// <param name="Steps">Optimizer steps done (fewer than asked when cancelled or stopped early).</param>
/// <param name="TrainLoss">Mean LM loss on training batches at the last evaluation.</param>
/// <param name="ValidationLoss">Mean LM loss on validation batches at the last evaluation, if there was validation data.</param>
/// <param name="TokensPerSecond">Training throughput over the run.</param>
/// <param name="Cancelled">Whether the run stopped early on cancellation.</param>
/// <param name="StoppedEarly">Whether early stopping ended the run (see <see cref="TrainerOptions.EarlyStopping"/>).</param>
/// <param name="BestStep">The step of the best validation loss, when early stopping is on.</param>
/// <param name="SkippedSteps">Steps skipped by float16 loss scaling because of inf/NaN gradients.</param>
public sealed record TrainingResult(long Steps, double TrainLoss, double? ValidationLoss, double TokensPerSecond, bool Cancelled,
    bool StoppedEarly = false, long? BestStep = null, long SkippedSteps = 0);

/// <summary>
/// Trains a <see cref="MoeForCausalLM"/> on random blocks of a token corpus: AdamW with weight decay on weight matrices
/// only (not on biases, norms or embeddings) and an optional router learning-rate multiplier, any learning-rate
/// schedule (default: linear warmup then cosine decay), gradient accumulation, per-module (router / experts / other)
/// and global gradient clipping (the global norm may follow a schedule), mixed precision (bf16/fp16 autocast over
/// float32 master weights, dynamic loss scaling for fp16), dynamic input-token masking, utilization-driven top-k,
/// periodic evaluation in evaluation mode without gradients, early stopping with the best weights restored, and
/// resumable checkpoints. The model's auxiliary router losses are added with their configured coefficients.
/// <para>
/// Every step runs in its own dispose scope, so memory stays flat; gradients are reset to none after each step
/// (parameters that get no gradient are skipped by AdamW; the experts of a bank share one stacked parameter, so an
/// expert that received no tokens in a step still gets the bank's weight decay and momentum). The host reads tensors
/// only at log points and evaluations (and once per step for fp16's overflow check). Cancellation stops at a step
/// boundary and saves a checkpoint.
/// </para>
/// </summary>
public sealed class Trainer : IDisposable
{
    private const string OptimizerFile = "optimizer.bin";
    private const string RngFile = "rng_state.bin";
    private const string StateFile = "trainer_state.json";

    private readonly GroupedAdamW _grouped;
    private readonly AdamW _optimizer;
    private readonly GroupedGradientClipper _clipper;
    private readonly TopKController? _topK;
    private readonly ILearningRateSchedule _schedule;
    private readonly DynamicLossScaler? _scaler;
    private readonly DynamicTokenMasker? _masker;
    private readonly EarlyStopping? _earlyStopping;
    private readonly ScalarType? _autocast;
    private long _step;
    private bool _seeded;
    private Dictionary<string, Tensor>? _bestWeights; // detached copies, outside any dispose scope
    private readonly MoeForCausalLM _model;
    private readonly BlockSampler _train;
    private readonly BlockSampler? _validation;
    private readonly TrainerOptions _options;
    private readonly ILogger _logger;

    /// <summary>A trainer of <paramref name="model"/> on <paramref name="train"/> (and <paramref name="validation"/> for evaluations).</summary>
    /// <exception cref="ArgumentException">Invalid options, blocks longer than the model's context, or a mask token outside the vocabulary.</exception>
    public Trainer(MoeForCausalLM model, BlockSampler train, BlockSampler? validation, TrainerOptions options, ILogger<Trainer>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid(nameof(options));
        foreach (var sampler in new[] { train, validation })
        {
            if (sampler is not null && sampler.BlockSize > model.Options.ContextLength)
                throw new ArgumentException($"Blocks of {sampler.BlockSize} tokens exceed the model's context length {model.Options.ContextLength}.", nameof(train));
        }

        if (options.TokenMasking is { } masking && masking.MaskTokenId >= model.Options.VocabSize)
            throw new ArgumentException($"TokenMasking.MaskTokenId = {masking.MaskTokenId} is outside the model's vocabulary [0, {model.Options.VocabSize}).", nameof(options));
        if (options.EarlyStopping is not null && validation is null)
            throw new ArgumentException("EarlyStopping needs validation data: pass a validation sampler.", nameof(validation));

        _model = model;
        _train = train;
        _validation = validation;
        _options = options;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _grouped = GroupedAdamW.Create(model.named_parameters(), new AdamWGroupOptions
        {
            LearningRate = options.LearningRate, Beta1 = options.Beta1, Beta2 = options.Beta2, WeightDecay = options.WeightDecay,
            RouterLearningRateMultiplier = options.RouterLearningRateMultiplier, Fused = options.FusedAdamW,
        });
        _optimizer = _grouped.Optimizer;
        _logger.LogInformation("AdamW ({Kind}), groups:{NewLine}{Groups}", _grouped.IsFused ? "fused kernel" : "per parameter", Environment.NewLine, _grouped.Describe());
        _schedule = options.CreateSchedule();
        // without per-module limits the groups still exist (with no limit) so their norms are logged
        _clipper = new GroupedGradientClipper(model.named_parameters(), options.ModuleGradientClip ?? Unlimited());
        if (options.AdaptiveTopK is { } adaptive)
        {
            if (adaptive.MaxK > model.Options.NumExperts)
                throw new ArgumentException($"AdaptiveTopK.MaxK = {adaptive.MaxK} exceeds the model's {model.Options.NumExperts} experts.", nameof(options));
            _topK = new TopKController(adaptive);
        }

        _autocast = options.Precision switch
        {
            TrainingPrecision.Bf16 => ScalarType.BFloat16,
            TrainingPrecision.Fp16 => ScalarType.Float16,
            _ => null,
        };
        if (options.Precision == TrainingPrecision.Fp16) _scaler = new DynamicLossScaler(options.LossScaling);
        if (options.TokenMasking is { } m) _masker = new DynamicTokenMasker(m);
        if (options.EarlyStopping is { } e) _earlyStopping = new EarlyStopping(e);
        if (model.parameters().Any(p => p.dtype != ScalarType.Float32) && _autocast is not null)
            throw new ArgumentException($"Precision = {options.Precision} needs float32 master weights; the model holds {model.parameters().First(p => p.dtype != ScalarType.Float32).dtype} parameters.", nameof(model));
    }

    private static GradientClipOptions Unlimited()
    {
        var limits = new GradientClipOptions { OtherMaxNorm = double.PositiveInfinity };
        foreach (var group in limits.Groups) group.MaxNorm = double.PositiveInfinity;
        return limits;
    }

    /// <summary>Optimizer steps done (including those of a resumed run).</summary>
    public long Step => _step;

    /// <summary>The fp16 loss scaler (null in other precisions).</summary>
    public DynamicLossScaler? LossScaler => _scaler;

    /// <summary>Adds files (e.g. the tokenizer) to every checkpoint; it receives the staging directory.</summary>
    public Action<string>? CheckpointExtras { get; set; }

    /// <inheritdoc />
    public void Dispose()
    {
        _clipper.Dispose();
        _grouped.Dispose();
        DisposeBestWeights();
    }

    /// <summary>Called at every log point and evaluation (for progress bars, metric files, trackers).</summary>
    public event Action<TrainingProgress>? Progress;

    /// <summary>
    /// Receives the run's parameters when <see cref="Run"/> starts (trainer and model options, parameter counts), the
    /// metrics of every log point and evaluation, and the end status (finished, killed on cancellation, failed on an
    /// exception). Build one with <see cref="TrainingTrackers.Create"/>; the trainer neither disposes it nor minds
    /// which sinks it fans out to.
    /// </summary>
    public ITrainingTracker? Tracker { get; set; }

    private void Report(TrainingProgress progress)
    {
        if (progress.Metrics is { } metrics) Tracker?.LogMetrics(progress.Step, metrics);
        Progress?.Invoke(progress);
    }

    /// <summary>The run's hyperparameters as flat strings (<c>trainer.*</c>, <c>model.*</c> in the options' JSON names).</summary>
    public IReadOnlyDictionary<string, string> Hyperparameters()
    {
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        void Flatten(string prefix, JsonElement element)
        {
            if (element.ValueKind == JsonValueKind.Object)
            {
                foreach (var property in element.EnumerateObject()) Flatten($"{prefix}.{property.Name}", property.Value);
            }
            else if (element.ValueKind != JsonValueKind.Null)
            {
                result[prefix] = element.ValueKind == JsonValueKind.String ? element.GetString()! : element.GetRawText();
            }
        }

        var json = new JsonSerializerOptions { Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() } };
        Flatten("trainer", JsonSerializer.SerializeToElement(_options, json));
        Flatten("model", JsonSerializer.SerializeToElement(_model.Options, json));
        result["trainer.Schedule"] = _schedule.GetType().Name;
        result["model.params_total"] = _model.ParameterCount.ToString(System.Globalization.CultureInfo.InvariantCulture);
        result["model.params_active"] = _model.ActiveParameterCount.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return result;
    }

    /// <summary>Runs the configured number of steps (or until cancelled, or until early stopping).</summary>
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
        long firstStep = _step, lastLogStep = _step;
        (double Train, double? Validation) last = (double.NaN, null);
        long step = _step;
        bool cancelled = false, stoppedEarly = false;
        _model.train();
        while (step < o.Steps)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                cancelled = true;
                break;
            }

            step++;
            double lr = _schedule.At(step - 1); // step counts from 1; schedules from 0
            var multipliers = _grouped.LearningRateMultipliers;
            int g = 0;
            foreach (var group in _optimizer.ParamGroups) group.LearningRate = lr * multipliers[g++];
            bool logPoint = step % o.LogInterval == 0;
            using (torch.NewDisposeScope())
            {
                var (output, norms, finite) = TrainStep(step, routerStatistics: logPoint);
                if (_topK is not null && logPoint && output.RouterStats.Count > 0)
                {
                    double utilization = output.RouterStats.Average(s => (double)s.Utilization.item<float>()); // host read at log points only
                    if (_topK.Update(step, utilization, _model.TopK) is { } k)
                    {
                        _logger.LogInformation("step {Step}: utilization {Utilization:F2}, top-k {Old} -> {New}", step, utilization, _model.TopK, k);
                        _model.TopK = k;
                    }
                }

                if (!finite) _logger.LogWarning("step {Step}: inf/NaN gradients, step skipped; loss scale now {Scale}", step, _scaler!.Scale);
                if (logPoint && step % o.EvalInterval != 0)
                {
                    double seconds = sinceLog.Elapsed.TotalSeconds;
                    var metrics = StepMetrics(output, norms, lr, (step - firstStep) * tokensPerStep / clock.Elapsed.TotalSeconds,
                        seconds / (step - lastLogStep), flopsPerStep, step);
                    lastLogStep = step;
                    sinceLog.Restart();
                    double loss = metrics[MetricNames.TrainLoss];
                    _logger.LogInformation("step {Step}/{Steps}: loss {Loss:F4}, lr {LearningRate:G3}, {TokensPerSecond:N0} tokens/s, {MsPerStep:F1} ms/step, MFU {Mfu:P1}",
                        step, o.Steps, loss, lr, metrics[MetricNames.TokensPerSecond], metrics[MetricNames.MillisecondsPerStep], metrics.GetValueOrDefault(MetricNames.Mfu));
                    Report(new TrainingProgress(step, loss, null, lr, metrics[MetricNames.TokensPerSecond], metrics));
                }
            }

            _step = step;
            if (step % o.EvalInterval == 0 || step == o.Steps)
            {
                last = Evaluate(step, lr, (step - firstStep) * tokensPerStep / clock.Elapsed.TotalSeconds);
                if (_earlyStopping is not null && last.Validation is { } val && CheckEarlyStopping(step, val)) stoppedEarly = true;
            }

            bool end = step == o.Steps || stoppedEarly;
            bool save = o.CheckpointDirectory is not null && (end || (o.CheckpointInterval is { } every && step % every == 0));
            if (save) SaveCheckpoint(o.CheckpointDirectory!);
            if (stoppedEarly) break;
            if (save || step % o.EvalInterval == 0)
            {
                // ms_per_step measures training steps: evaluations and checkpoints are not counted in the next interval
                lastLogStep = step;
                sinceLog.Restart();
            }
        }

        double throughput = (step - firstStep) * tokensPerStep / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        if (cancelled && step > firstStep)
        {
            // save before the final evaluation draws batches, so a resumed run continues exactly where training stopped
            if (o.CheckpointDirectory is { } dir) SaveCheckpoint(dir);
            last = Evaluate(step, _schedule.At(step - 1), throughput);
        }

        if (stoppedEarly && _bestWeights is not null && o.EarlyStopping!.RestoreBestWeights)
        {
            RestoreBestWeights();
            _logger.LogInformation("restored the weights of step {Step} (validation loss {Loss:F4})", _earlyStopping!.State.BestStep, _earlyStopping.State.BestLoss);
            last = (EvaluateLoss(_train), _validation is null ? null : EvaluateLoss(_validation));
        }

        _model.train();
        return new TrainingResult(step, last.Train, last.Validation, throughput, cancelled, stoppedEarly, _earlyStopping?.State.BestStep, _scaler?.State.SkippedSteps ?? 0);
    }

    /// <summary>
    /// Forward and backward over the micro-batches, then (unless fp16 overflowed) clip and step. Returns the last
    /// micro-batch's output (with router statistics when <paramref name="routerStatistics"/>), the pre-clip gradient norms (see <see cref="GroupedGradientClipper.NormLabels"/>), and
    /// whether the step was taken. Everything belongs to the caller's dispose scope.
    /// </summary>
    private (CausalLMOutput Output, Tensor Norms, bool Finite) TrainStep(long step, bool routerStatistics)
    {
        var o = _options;
        CausalLMOutput? output = null;
        for (int micro = 0; micro < o.GradientAccumulation; micro++)
        {
            var (x, y) = _train.Next(o.BatchSize, _model.Device);
            if (_masker is not null) x = _masker.Mask(x, step - 1, o.Steps, null); // inputs only: the targets stay real
            // statistics (and aux losses with a zero coefficient) only where they are logged: the last micro-batch of a log point
            bool statistics = routerStatistics && micro == o.GradientAccumulation - 1;
            using (_autocast is { } dtype ? Autocast.Enable(dtype) : null) output = _model.call(new CausalLMInput(x, y, RouterStatistics: statistics));
            var loss = output.Loss! / o.GradientAccumulation;
            (_scaler is null ? loss : _scaler.ScaleLoss(loss)).backward();
        }

        bool finite = _scaler?.UnscaleGradients(_model.parameters()) ?? true;
        Tensor norms;
        if (finite)
        {
            double globalClip = o.GradientClipSchedule?.AtStep(step - 1, o.Steps) ?? o.GradientClip ?? double.PositiveInfinity;
            norms = _clipper.ClipGradients(globalClip); // per module, then global
            _optimizer.step();
        }
        else
        {
            norms = torch.full(_clipper.NormLabels.Count, float.NaN);
        }

        _scaler?.Update(finite);
        _model.zero_grad(); // set to none
        return (output!, norms, finite);
    }

    /// <summary>The metrics of a log point (host reads: one per tensor read here).</summary>
    private Dictionary<string, double> StepMetrics(CausalLMOutput output, Tensor norms, double lr, double tokensPerSecond, double secondsPerStep, double flopsPerStep, long step)
    {
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            [MetricNames.TrainLoss] = output.LmLoss!.item<float>(),
            [MetricNames.LearningRate] = lr,
            [MetricNames.TokensPerSecond] = tokensPerSecond,
            [MetricNames.MillisecondsPerStep] = secondsPerStep * 1000,
            [MetricNames.LoadBalancingLoss] = output.LoadBalancingLoss.item<float>(),
            [MetricNames.ZLoss] = output.ZLoss.item<float>(),
            [MetricNames.UtilizationKlLoss] = output.UtilizationKlLoss.item<float>(),
            [MetricNames.TopK] = _model.TopK,
        };
        float[] n = norms.data<float>().ToArray();
        for (int i = 0; i < n.Length; i++) metrics[MetricNames.GradNormPrefix + _clipper.NormLabels[i]] = n[i];
        double peak = _options.PeakFlopsPerSecond ?? ModelFlops.MeasureMatmulPeak(_autocast ?? ScalarType.Float32, _model.Device);
        metrics[MetricNames.Mfu] = flopsPerStep / secondsPerStep / peak;
        if (_options.GradientClipSchedule is { } clip) metrics[MetricNames.GradClip] = clip.AtStep(step - 1, _options.Steps);
        if (_scaler is not null) metrics[MetricNames.LossScale] = _scaler.Scale;
        if (_masker is not null) metrics[MetricNames.MaskProbability] = _masker.ProbabilityAt(step - 1, _options.Steps);
        if (output.RouterStats.Count > 0)
        {
            double utilization = 0;
            foreach (var layer in output.RouterStats)
            {
                utilization += layer.Utilization.item<float>();
                long[] counts = layer.TokensPerExpert.data<long>().ToArray();
                double total = Math.Max(1, counts.Sum());
                for (int e = 0; e < counts.Length; e++) metrics[MetricNames.ExpertLoad(layer.Layer, e)] = counts[e] / total;
            }

            metrics[MetricNames.Utilization] = utilization / output.RouterStats.Count;
        }

        return metrics;
    }

    /// <summary>Records a validation loss; keeps (and checkpoints) the best weights; says whether to stop.</summary>
    private bool CheckEarlyStopping(long step, double validationLoss)
    {
        var decision = _earlyStopping!.Update(step, validationLoss);
        if (decision.Improved)
        {
            if (decision.RestoreBestWeights) KeepBestWeights();
            if (_options.CheckpointDirectory is { } dir) Save(Path.TrimEndingDirectorySeparator(dir) + ".best", archive: false);
        }

        if (decision.ShouldStop)
            _logger.LogInformation("step {Step}: no improvement in {Count} evaluations (best {Best:F4} at step {BestStep}); stopping early",
                step, decision.EvaluationsWithoutImprovement, decision.BestLoss, decision.BestStep);
        return decision.ShouldStop;
    }

    private void KeepBestWeights()
    {
        DisposeBestWeights();
        using var noGrad = torch.no_grad();
        _bestWeights = _model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());
    }

    private void RestoreBestWeights()
    {
        using var noGrad = torch.no_grad();
        foreach (var (name, value) in _model.state_dict()) value.copy_(_bestWeights![name]);
    }

    private void DisposeBestWeights()
    {
        if (_bestWeights is null) return;
        foreach (var t in _bestWeights.Values) t.Dispose();
        _bestWeights = null;
    }

    /// <summary>
    /// Saves a resumable checkpoint to <paramref name="directory"/> (replaced atomically): the model
    /// (<c>config.json</c>, <c>model.safetensors</c>), the optimizer state, the torch generator state, the blocks each
    /// sampler has drawn, the loss scaler and early-stopping state, and a SHA-256 of every file, so a truncated or
    /// corrupted checkpoint is refused on resume. With <see cref="TrainerOptions.KeepCheckpoints"/> &gt; 1 the previous
    /// checkpoints move to <c>{directory}.history/step-N</c>. With early stopping, the best one is also saved to
    /// <c>{directory}.best</c>.
    /// </summary>
    public void SaveCheckpoint(string directory) => Save(directory, archive: true);

    private void Save(string directory, bool archive)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (archive && _options.KeepCheckpoints > 1) ArchivePrevious(directory);
        MoeCheckpoint.Save(_model, directory, staging =>
        {
            _grouped.SaveState(Path.Combine(staging, OptimizerFile));
            using (var rng = torch.get_rng_state()) File.WriteAllBytes(Path.Combine(staging, RngFile), rng.bytes.ToArray());
            CheckpointExtras?.Invoke(staging);
            var files = Directory.GetFiles(staging).Select(Path.GetFileName).Where(f => f != StateFile).Order(StringComparer.Ordinal)
                .ToDictionary(f => f!, f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(staging, f!)))));
            var state = new TrainerState(_step, _train.Drawn, _validation?.Drawn ?? 0, files, _scaler?.State, _earlyStopping?.State, _model.TopK);
            File.WriteAllText(Path.Combine(staging, StateFile), JsonSerializer.Serialize(state, new JsonSerializerOptions { WriteIndented = true }));
        });
        _logger.LogInformation("step {Step}: checkpoint saved to {Directory}", _step, directory);
    }

    /// <summary>
    /// Moves the checkpoint in <paramref name="directory"/> (if it is one, at another step) to
    /// <c>{directory}.history/step-N</c> (a rename: nothing is copied) and deletes the oldest there beyond
    /// <see cref="TrainerOptions.KeepCheckpoints"/> − 1.
    /// </summary>
    private void ArchivePrevious(string directory)
    {
        string statePath = Path.Combine(directory, StateFile);
        if (!File.Exists(statePath)) return;
        long previous;
        try
        {
            previous = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(statePath))?.Step ?? -1;
        }
        catch (JsonException)
        {
            return; // not ours to archive: MoeCheckpoint.Save replaces it
        }

        if (previous < 0 || previous == _step) return;
        string history = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)) + ".history";
        Directory.CreateDirectory(history);
        string target = Path.Combine(history, $"step-{previous:D8}");
        if (Directory.Exists(target)) Directory.Delete(target, recursive: true);
        Directory.Move(directory, target);
        foreach (string old in Directory.GetDirectories(history, "step-*").Order(StringComparer.Ordinal).SkipLast(_options.KeepCheckpoints - 1))
            Directory.Delete(old, recursive: true);
    }

    /// <summary>
    /// Continues from a checkpoint of <see cref="SaveCheckpoint"/>: weights, optimizer state, generator state, step,
    /// sampler positions, loss scale and early-stopping state, so a run of 2N steps and a run of N steps, saved and
    /// resumed for N more, end the same. The model and samplers must be built as for the original run (same options,
    /// corpus and seeds).
    /// </summary>
    /// <exception cref="InvalidDataException">A file is missing, truncated or corrupted (checksum), or the weights do not match the model.</exception>
    /// <exception cref="ArgumentException">The checkpoint is past this run's steps, or the model's options differ from the
    /// run's (e.g. another dropout, which no weight shape would reveal); the message lists each differing option.</exception>
    public void Resume(string directory)
    {
        string statePath = Path.Combine(directory, StateFile);
        if (!File.Exists(statePath)) throw new FileNotFoundException($"'{directory}' is not a resumable checkpoint: '{StateFile}' is missing.", statePath);
        TrainerState state;
        try
        {
            state = JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(statePath)) ?? throw new InvalidDataException($"'{statePath}' is empty.");
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{statePath}' is corrupted: {ex.Message}", ex);
        }

        foreach (var (file, hash) in state.Sha256)
        {
            string path = Path.Combine(directory, file);
            if (!File.Exists(path)) throw new InvalidDataException($"Checkpoint '{directory}' lacks '{file}'.");
            if (Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))) != hash)
                throw new InvalidDataException($"Checkpoint '{directory}': '{file}' does not match its recorded SHA-256 (truncated or corrupted); nothing was loaded.");
        }

        if (state.Step > _options.Steps) throw new ArgumentException($"The checkpoint is at step {state.Step}, past this run's {_options.Steps} steps.", nameof(directory));
        if (!MoeCheckpoint.HasCurrentWeightLayout(Path.Combine(directory, MoeCheckpoint.WeightsFile)))
        {
            throw new InvalidDataException($"Checkpoint '{directory}' was written by an earlier version that stored projection weights (out, in): " +
                "its weights load (transposed), but its optimizer state cannot be resumed; nothing was loaded. Start a new run from its weights instead (fine-tuning, e.g. yinghub train --init-from).");
        }
        if (OptionDifferences(_model.Options, MoeCheckpoint.ReadOptions(directory)) is { Count: > 0 } differences)
        {
            throw new ArgumentException($"Checkpoint '{directory}' was trained with other model options than this model's: {string.Join("; ", differences)}; " +
                "nothing was loaded. Build the model with the run's options (its config.json, MoeCheckpoint.ReadOptions) to resume it.", nameof(directory));
        }

        MoeCheckpoint.LoadWeights(_model, Path.Combine(directory, MoeCheckpoint.WeightsFile), strict: true);
        _grouped.LoadState(Path.Combine(directory, OptimizerFile));
        using (var rng = torch.get_rng_state())
        {
            rng.bytes = File.ReadAllBytes(Path.Combine(directory, RngFile));
            torch.set_rng_state(rng);
        }

        _train.Skip(state.TrainBlocks - _train.Drawn);
        _validation?.Skip(state.ValidationBlocks - _validation.Drawn);
        if (state.LossScaler is { } scaler) _scaler?.Restore(scaler);
        if (state.EarlyStopping is { } early) _earlyStopping?.Restore(early);
        if (state.TopK is { } topK) _model.TopK = topK;
        _step = state.Step;
        _seeded = true;
        _logger.LogInformation("resumed from {Directory} at step {Step}", directory, _step);
    }

    // options a resumed run may differ in: the router's k (changed at run time, restored from the trainer state) and
    // the initialisation (it only shapes new weights)
    private static readonly HashSet<string> ResumableOptionChanges = ["num_experts_per_tok", "init_scheme", "initializer_range", "residual_init"];

    /// <summary>Each option (by its config.json name) whose value differs between <paramref name="model"/> and <paramref name="saved"/>.</summary>
    private static List<string> OptionDifferences(MoeModelOptions model, MoeModelOptions saved)
    {
        var ours = JsonSerializer.SerializeToElement(model);
        var theirs = JsonSerializer.SerializeToElement(saved);
        return ours.EnumerateObject()
            .Where(p => !ResumableOptionChanges.Contains(p.Name))
            .Select(p => (p.Name, Model: p.Value.GetRawText(), Saved: theirs.TryGetProperty(p.Name, out var v) ? v.GetRawText() : "(absent)"))
            .Where(d => d.Model != d.Saved)
            .Select(d => $"{d.Name} {d.Saved} in the checkpoint, {d.Model} in this model")
            .ToList();
    }

    private sealed record TrainerState(long Step, long TrainBlocks, long ValidationBlocks, Dictionary<string, string> Sha256,
        LossScalerState? LossScaler = null, EarlyStoppingState? EarlyStopping = null, int? TopK = null);

    /// <summary>Mean LM loss over <see cref="TrainerOptions.EvalBatches"/> batches, in evaluation mode without gradients, in the run's precision.</summary>
    public double EvaluateLoss(BlockSampler sampler)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        bool wasTraining = _model.training;
        _model.eval();
        double sum = 0;
        using (torch.no_grad())
        using (_autocast is { } dtype ? Autocast.Enable(dtype) : null)
        {
            for (int i = 0; i < _options.EvalBatches; i++)
            {
                using var scope = torch.NewDisposeScope();
                var (x, y) = sampler.Next(_options.BatchSize, _model.Device);
                sum += _model.call(new CausalLMInput(x, y, RouterStatistics: false)).LmLoss!.item<float>();
            }
        }

        if (wasTraining) _model.train();
        return sum / _options.EvalBatches;
    }

    private (double Train, double? Validation) Evaluate(long step, double lr, double tokensPerSecond)
    {
        double train = EvaluateLoss(_train);
        double? validation = _validation is null ? null : EvaluateLoss(_validation);
        _logger.LogInformation("step {Step}/{Steps}: train loss {Train:F4}, validation loss {Validation}, lr {LearningRate:G3}, {TokensPerSecond:N0} tokens/s",
            step, _options.Steps, train, validation?.ToString("F4") ?? "n/a", lr, tokensPerSecond);
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal)
        {
            [MetricNames.EvalTrainLoss] = train, [MetricNames.LearningRate] = lr, [MetricNames.TokensPerSecond] = tokensPerSecond,
        };
        if (validation is { } v) metrics[MetricNames.ValidationLoss] = v;
        Report(new TrainingProgress(step, train, validation, lr, tokensPerSecond, metrics));
        return (train, validation);
    }
}
