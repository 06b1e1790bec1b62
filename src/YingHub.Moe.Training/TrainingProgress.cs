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
/// <c>expert_load/{layer}/{expert}</c>, <c>dropped/{layer}</c>, <c>dropped/mean</c>, ...; an evaluation that is also a log point
/// carries both the step's metrics and the evaluation's); empty when the point was made by hand.
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
