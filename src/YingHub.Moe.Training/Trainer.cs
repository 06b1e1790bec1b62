using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Routing;
using YingHub.Moe.Training.Schedules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training;

/// <summary>One evaluation or log point of a training run.</summary>
/// <param name="Step">Optimizer steps done.</param>
/// <param name="TrainLoss">LM loss on training batches (the last micro-batch at a log point; a mean of batches at an evaluation).</param>
/// <param name="ValidationLoss">Mean LM loss on validation batches, at evaluations (null at log points, or without validation data).</param>
/// <param name="LearningRate">The learning rate of the step.</param>
/// <param name="TokensPerSecond">Training tokens per second since the start of the run.</param>
public sealed record TrainingProgress(long Step, double TrainLoss, double? ValidationLoss, double LearningRate, double TokensPerSecond);

/// <summary>The outcome of <see cref="Trainer.Run"/>.</summary>
/// <param name="Steps">Optimizer steps done (fewer than asked when cancelled).</param>
/// <param name="TrainLoss">Mean LM loss on training batches at the last evaluation.</param>
/// <param name="ValidationLoss">Mean LM loss on validation batches at the last evaluation, if there was validation data.</param>
/// <param name="TokensPerSecond">Training throughput over the run.</param>
/// <param name="Cancelled">Whether the run stopped early on cancellation.</param>
public sealed record TrainingResult(long Steps, double TrainLoss, double? ValidationLoss, double TokensPerSecond, bool Cancelled);

/// <summary>
/// Trains a <see cref="MoeForCausalLM"/> on random blocks of a token corpus: AdamW with weight decay on weight matrices
/// only (not on biases, norms or embeddings) and an optional router learning-rate multiplier, linear warmup then cosine
/// decay, gradient accumulation, per-module (router / experts / other) and global gradient clipping, the model's
/// auxiliary router losses added with their configured coefficients, periodic evaluation in
/// evaluation mode without gradients. Every step runs in its own dispose scope, so memory stays flat; gradients are
/// reset to none after each step (parameters that get no gradient are skipped by AdamW; the experts of a bank share
/// one stacked parameter, so an expert that received no tokens in a step still gets the bank's weight decay and
/// momentum). Cancellation stops at a step boundary.
/// </summary>
public sealed class Trainer : IDisposable
{
    private const string OptimizerFile = "optimizer.bin";
    private const string RngFile = "rng_state.bin";
    private const string StateFile = "trainer_state.json";

    private readonly GroupedAdamW _grouped;
    private readonly AdamW _optimizer;
    private readonly GroupedGradientClipper? _clipper;
    private readonly TopKController? _topK;
    private readonly ILearningRateSchedule _schedule;
    private long _step;
    private bool _seeded;
    private readonly MoeForCausalLM _model;
    private readonly BlockSampler _train;
    private readonly BlockSampler? _validation;
    private readonly TrainerOptions _options;
    private readonly ILogger _logger;

    /// <summary>A trainer of <paramref name="model"/> on <paramref name="train"/> (and <paramref name="validation"/> for evaluations).</summary>
    /// <exception cref="ArgumentException">Invalid options, or blocks longer than the model's context.</exception>
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

        _model = model;
        _train = train;
        _validation = validation;
        _options = options;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _grouped = GroupedAdamW.Create(model.named_parameters(), new AdamWGroupOptions
        {
            LearningRate = options.LearningRate, Beta1 = options.Beta1, Beta2 = options.Beta2, WeightDecay = options.WeightDecay,
            RouterLearningRateMultiplier = options.RouterLearningRateMultiplier,
        });
        _optimizer = _grouped.Optimizer;
        _schedule = options.CreateSchedule();
        if (options.ModuleGradientClip is { } clip) _clipper = new GroupedGradientClipper(model.named_parameters(), clip);
        if (options.AdaptiveTopK is { } adaptive)
        {
            if (adaptive.MaxK > model.Options.NumExperts)
                throw new ArgumentException($"AdaptiveTopK.MaxK = {adaptive.MaxK} exceeds the model's {model.Options.NumExperts} experts.", nameof(options));
            _topK = new TopKController(adaptive);
        }
    }

    /// <summary>Optimizer steps done (including those of a resumed run).</summary>
    public long Step => _step;

    /// <summary>Adds files (e.g. the tokenizer) to every checkpoint; it receives the staging directory.</summary>
    public Action<string>? CheckpointExtras { get; set; }

    /// <inheritdoc />
    public void Dispose()
    {
        _clipper?.Dispose();
        _grouped.Dispose();
    }

    /// <summary>Called at every log point and evaluation (for progress bars, metric files, trackers).</summary>
    public event Action<TrainingProgress>? Progress;

    /// <summary>Runs the configured number of steps (or until cancelled).</summary>
    public TrainingResult Run(CancellationToken cancellationToken = default)
    {
        var o = _options;
        if (!_seeded) torch.manual_seed(o.Seed); // a resumed run continues the saved generator state instead
        _seeded = true;
        var optimizer = _optimizer;
        long tokensPerStep = (long)o.BatchSize * o.GradientAccumulation * _train.BlockSize;
        var clock = Stopwatch.StartNew();
        long firstStep = _step;
        (double Train, double? Validation) last = (double.NaN, null);
        long step = _step;
        bool cancelled = false;
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
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr * multipliers[g++];
            using (torch.NewDisposeScope())
            {
                Tensor? lmLoss = null;
                IReadOnlyList<RouterLayerStats> stats = [];
                for (int micro = 0; micro < o.GradientAccumulation; micro++)
                {
                    var (x, y) = _train.Next(o.BatchSize, _model.Device);
                    var output = _model.call(new CausalLMInput(x, y));
                    (output.Loss! / o.GradientAccumulation).backward();
                    lmLoss = output.LmLoss;
                    stats = output.RouterStats;
                }

                if (_clipper is not null) _clipper.ClipGradients(o.GradientClip ?? double.PositiveInfinity); // per module, then global
                else if (o.GradientClip is { } clip) torch.nn.utils.clip_grad_norm_(_model.parameters(), clip);
                optimizer.step();
                _model.zero_grad(); // set to none
                if (_topK is not null && step % o.LogInterval == 0 && stats.Count > 0)
                {
                    double utilization = stats.Average(s => (double)s.Utilization.item<float>()); // host read at log points only
                    if (_topK.Update(step, utilization, _model.TopK) is { } k)
                    {
                        _logger.LogInformation("step {Step}: utilization {Utilization:F2}, top-k {Old} -> {New}", step, utilization, _model.TopK, k);
                        _model.TopK = k;
                    }
                }

                if (step % o.LogInterval == 0 && step % o.EvalInterval != 0)
                {
                    double loss = lmLoss!.item<float>();
                    double tps = (step - firstStep) * tokensPerStep / clock.Elapsed.TotalSeconds;
                    _logger.LogInformation("step {Step}/{Steps}: loss {Loss:F4}, lr {LearningRate:G3}, {TokensPerSecond:N0} tokens/s", step, o.Steps, loss, lr, tps);
                    Progress?.Invoke(new TrainingProgress(step, loss, null, lr, tps));
                }
            }

            _step = step;
            if (step % o.EvalInterval == 0 || step == o.Steps) last = Evaluate(step, lr, (step - firstStep) * tokensPerStep / clock.Elapsed.TotalSeconds);
            if (o.CheckpointDirectory is { } dir && (step == o.Steps || (o.CheckpointInterval is { } every && step % every == 0))) SaveCheckpoint(dir);
        }

        double throughput = (step - firstStep) * tokensPerStep / Math.Max(clock.Elapsed.TotalSeconds, 1e-9);
        if (cancelled && step > firstStep)
        {
            // save before the final evaluation draws batches, so a resumed run continues exactly where training stopped
            if (o.CheckpointDirectory is { } dir) SaveCheckpoint(dir);
            last = Evaluate(step, _schedule.At(step - 1), throughput);
        }

        _model.train();
        return new TrainingResult(step, last.Train, last.Validation, throughput, cancelled);
    }

    /// <summary>
    /// Saves a resumable checkpoint to <paramref name="directory"/> (replaced atomically): the model
    /// (<c>config.json</c>, <c>model.safetensors</c>), the optimizer state, the torch generator state, the blocks each
    /// sampler has drawn, and a SHA-256 of every file, so a truncated or corrupted checkpoint is refused on resume.
    /// </summary>
    public void SaveCheckpoint(string directory)
    {
        MoeCheckpoint.Save(_model, directory, staging =>
        {
            _optimizer.save_state_dict(Path.Combine(staging, OptimizerFile));
            using (var rng = torch.get_rng_state()) File.WriteAllBytes(Path.Combine(staging, RngFile), rng.bytes.ToArray());
            CheckpointExtras?.Invoke(staging);
            var files = Directory.GetFiles(staging).Select(Path.GetFileName).Where(f => f != StateFile).Order(StringComparer.Ordinal)
                .ToDictionary(f => f!, f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(Path.Combine(staging, f!)))));
            var state = new TrainerState(_step, _train.Drawn, _validation?.Drawn ?? 0, files);
            File.WriteAllText(Path.Combine(staging, StateFile), JsonSerializer.Serialize(state, new JsonSerializerOptions { WriteIndented = true }));
        });
        _logger.LogInformation("step {Step}: checkpoint saved to {Directory}", _step, directory);
    }

    /// <summary>
    /// Continues from a checkpoint of <see cref="SaveCheckpoint"/>: weights, optimizer state, generator state, step and
    /// sampler positions, so a run of 2N steps and a run of N steps, saved and resumed for N more, end the same.
    /// The model and samplers must be built as for the original run (same options, corpus and seeds).
    /// </summary>
    /// <exception cref="InvalidDataException">A file is missing, truncated or corrupted (checksum), or the weights do not match the model.</exception>
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
        MoeCheckpoint.LoadWeights(_model, Path.Combine(directory, MoeCheckpoint.WeightsFile), strict: true);
        _optimizer.load_state_dict(Path.Combine(directory, OptimizerFile));
        using (var rng = torch.get_rng_state())
        {
            rng.bytes = File.ReadAllBytes(Path.Combine(directory, RngFile));
            torch.set_rng_state(rng);
        }

        _train.Skip(state.TrainBlocks - _train.Drawn);
        _validation?.Skip(state.ValidationBlocks - _validation.Drawn);
        _step = state.Step;
        _seeded = true;
        _logger.LogInformation("resumed from {Directory} at step {Step}", directory, _step);
    }

    private sealed record TrainerState(long Step, long TrainBlocks, long ValidationBlocks, Dictionary<string, string> Sha256);

    /// <summary>Mean LM loss over <see cref="TrainerOptions.EvalBatches"/> batches, in evaluation mode without gradients.</summary>
    public double EvaluateLoss(BlockSampler sampler)
    {
        ArgumentNullException.ThrowIfNull(sampler);
        bool wasTraining = _model.training;
        _model.eval();
        double sum = 0;
        using (torch.no_grad())
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
        Progress?.Invoke(new TrainingProgress(step, train, validation, lr, tokensPerSecond));
        return (train, validation);
    }
}
