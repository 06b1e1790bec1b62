using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Data;
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
/// only (not on biases, norms or embeddings), linear warmup then cosine decay, gradient accumulation, global gradient
/// clipping, the model's auxiliary router losses added with their configured coefficients, periodic evaluation in
/// evaluation mode without gradients. Every step runs in its own dispose scope, so memory stays flat; gradients are
/// reset to none after each step (parameters that get no gradient are skipped by AdamW; the experts of a bank share
/// one stacked parameter, so an expert that received no tokens in a step still gets the bank's weight decay and
/// momentum). Cancellation stops at a step boundary.
/// </summary>
public sealed class Trainer
{
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
    }

    /// <summary>Called at every log point and evaluation (for progress bars, metric files, trackers).</summary>
    public event Action<TrainingProgress>? Progress;

    /// <summary>Runs the configured number of steps (or until cancelled).</summary>
    public TrainingResult Run(CancellationToken cancellationToken = default)
    {
        var o = _options;
        torch.manual_seed(o.Seed);
        using var optimizer = CreateOptimizer();
        long tokensPerStep = (long)o.BatchSize * o.GradientAccumulation * _train.BlockSize;
        var clock = Stopwatch.StartNew();
        (double Train, double? Validation) last = (double.NaN, null);
        long step = 0;
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
            double lr = o.LearningRateAt(step);
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
            using (torch.NewDisposeScope())
            {
                Tensor? lmLoss = null;
                for (int micro = 0; micro < o.GradientAccumulation; micro++)
                {
                    var (x, y) = _train.Next(o.BatchSize, _model.Device);
                    var output = _model.call(new CausalLMInput(x, y));
                    (output.Loss! / o.GradientAccumulation).backward();
                    lmLoss = output.LmLoss;
                }

                if (o.GradientClip is { } clip) torch.nn.utils.clip_grad_norm_(_model.parameters(), clip);
                optimizer.step();
                _model.zero_grad(); // set to none
                if (step % o.LogInterval == 0 && step % o.EvalInterval != 0)
                {
                    double loss = lmLoss!.item<float>();
                    double tps = step * tokensPerStep / clock.Elapsed.TotalSeconds;
                    _logger.LogInformation("step {Step}/{Steps}: loss {Loss:F4}, lr {LearningRate:G3}, {TokensPerSecond:N0} tokens/s", step, o.Steps, loss, lr, tps);
                    Progress?.Invoke(new TrainingProgress(step, loss, null, lr, tps));
                }
            }

            if (step % o.EvalInterval == 0 || step == o.Steps) last = Evaluate(step, lr, step * tokensPerStep / clock.Elapsed.TotalSeconds);
        }

        if (cancelled && step > 0) last = Evaluate(step, o.LearningRateAt(step), step * tokensPerStep / clock.Elapsed.TotalSeconds);
        _model.train();
        return new TrainingResult(step, last.Train, last.Validation, step * tokensPerStep / Math.Max(clock.Elapsed.TotalSeconds, 1e-9), cancelled);
    }

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

    /// <summary>AdamW with two groups: weight decay on weight matrices, none on biases, norms and embeddings.</summary>
    private AdamW CreateOptimizer()
    {
        var decay = new List<Parameter>();
        var noDecay = new List<Parameter>();
        foreach (var (name, p) in _model.named_parameters())
        {
            if (!p.requires_grad) continue;
            bool isEmbedding = name.StartsWith("embed_", StringComparison.Ordinal);
            (p.dim() >= 2 && !isEmbedding ? decay : noDecay).Add(p);
        }

        var o = _options;
        return torch.optim.AdamW(
            [
                new AdamW.ParamGroup(decay, new AdamW.Options { LearningRate = o.LearningRate, weight_decay = o.WeightDecay, beta1 = o.Beta1, beta2 = o.Beta2 }),
                new AdamW.ParamGroup(noDecay, new AdamW.Options { LearningRate = o.LearningRate, weight_decay = 0, beta1 = o.Beta1, beta2 = o.Beta2 }),
            ],
            o.LearningRate, o.Beta1, o.Beta2);
    }
}
