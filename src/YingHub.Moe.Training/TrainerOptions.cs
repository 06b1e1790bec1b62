using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training;

/// <summary>How <see cref="Trainer"/> trains. <see cref="GetValidationErrors"/> names every bad field with its value and range.</summary>
public sealed class TrainerOptions : IValidatableOptions
{
    /// <summary>Optimizer steps, [1, 100,000,000].</summary>
    public int Steps { get; set; } = 1000;

    /// <summary>Sequences per micro-batch, [1, 65,536].</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>Micro-batches whose gradients are summed (averaged) per optimizer step, [1, 4,096].</summary>
    public int GradientAccumulation { get; set; } = 1;

    /// <summary>Peak learning rate, (0, 10].</summary>
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>Learning rate at the end of the cosine decay, [0, LearningRate].</summary>
    public double MinLearningRate { get; set; } = 1e-4;

    /// <summary>
    /// Linear warmup steps from 0 to the peak, [0, 100,000,000]; a warmup longer than <see cref="Steps"/> (a run
    /// shortened on resume, say) only rises, as Hugging Face's schedules do.
    /// </summary>
    public int WarmupSteps { get; set; } = 100;

    /// <summary>AdamW weight decay on weight matrices (not on biases, norms or embeddings), [0, 10].</summary>
    public double WeightDecay { get; set; } = 0.1;

    /// <summary>AdamW β1, [0, 1).</summary>
    public double Beta1 { get; set; } = 0.9;

    /// <summary>AdamW β2, [0, 1).</summary>
    public double Beta2 { get; set; } = 0.99;

    /// <summary>
    /// Run AdamW as libtorch's fused multi-tensor kernel (PyTorch's <c>fused=True</c>, see
    /// <see cref="Optimization.FusedAdamW"/>); false: TorchSharp's per-parameter AdamW. Same update, same state files.
    /// </summary>
    [System.Text.Json.Serialization.JsonPropertyName("fused_adamw")]
    public bool FusedAdamW { get; set; } = true;

    /// <summary>Maximum global gradient norm, (0, 1e6], or null for no global clipping.</summary>
    public double? GradientClip { get; set; } = 1.0;

    /// <summary>
    /// Per-module gradient clipping before the global clip (YingHub-v2: router 0.5, experts 2.0, other 1.0); null
    /// clips globally only.
    /// </summary>
    public Optimization.GradientClipOptions? ModuleGradientClip { get; set; }

    /// <summary>Learning-rate multiplier of the router parameters, (0, 100].</summary>
    public double RouterLearningRateMultiplier { get; set; } = 1.0;

    /// <summary>Evaluate every N steps (and at the end), [1, 100,000,000]; beyond <see cref="Steps"/> means at the end only.</summary>
    public int EvalInterval { get; set; } = 250;

    /// <summary>Batches averaged per evaluation, [1, 10,000].</summary>
    public int EvalBatches { get; set; } = 20;

    /// <summary>Log the training loss every N steps, [1, 100,000,000].</summary>
    public int LogInterval { get; set; } = 50;

    /// <summary>Save a resumable checkpoint every N steps (and at the end and on cancellation when a directory is set), [1, 100,000,000]; null: no step interval.</summary>
    public int? CheckpointInterval { get; set; }

    /// <summary>
    /// Also save a resumable checkpoint when this many minutes have passed since the last save (whichever of this and
    /// <see cref="CheckpointInterval"/> comes first), (0, 525,600]; null: no time interval.
    /// </summary>
    public double? CheckpointIntervalMinutes { get; set; }

    /// <summary>
    /// Parameters to freeze before training (parts or name globs, see <see cref="Freezing.ParameterFreezing"/>): they
    /// get no gradient, no optimizer state and no weight decay, and the checkpoints record them.
    /// </summary>
    public List<string> Freeze { get; set; } = [];

    /// <summary>Where checkpoints go (replaced atomically each time); null saves none.</summary>
    public string? CheckpointDirectory { get; set; }

    /// <summary>Utilization-driven top-k, checked at every log point; null keeps k fixed.</summary>
    public Routing.TopKControllerOptions? AdaptiveTopK { get; set; }

    /// <summary>Arithmetic of the forward and backward passes (fp32, bf16 or fp16 autocast over float32 master weights).</summary>
    public TrainingPrecision Precision { get; set; } = TrainingPrecision.Fp32;

    /// <summary>Loss scaling of <see cref="TrainingPrecision.Fp16"/> runs (ignored otherwise); null uses the defaults (initial scale 2^16, ×2 every 2,000 finite steps, ×0.5 on overflow).</summary>
    public Optimization.DynamicLossScalerOptions? LossScaling { get; set; }

    /// <summary>
    /// A global clip norm that changes over training (progress 0..1), overriding <see cref="GradientClip"/>, e.g.
    /// <see cref="Schedules.YingHubV2Schedules.GlobalClipNorm"/> (1.0 → 2.0 over the first half, 2.0 → 2.5 over the second);
    /// null uses <see cref="GradientClip"/> throughout. In JSON: <c>[[progress, norm], ...]</c>.
    /// </summary>
    public Schedules.PiecewiseLinearSchedule? GradientClipSchedule { get; set; }

    /// <summary>Dynamic masking of input tokens (YingHub-v2: 0.20 → 0.05 over training); null masks nothing.</summary>
    public Data.TokenMaskingOptions? TokenMasking { get; set; }

    /// <summary>Stop when the validation loss stops improving (checked at evaluations); null trains all <see cref="Steps"/>.</summary>
    public Optimization.EarlyStoppingOptions? EarlyStopping { get; set; }

    /// <summary>
    /// Checkpoints kept: the latest in <see cref="CheckpointDirectory"/>, and the N − 1 before it in
    /// <c>{CheckpointDirectory}.history/step-NNNNNNNN</c>, [1, 1,000].
    /// </summary>
    public int KeepCheckpoints { get; set; } = 1;

    /// <summary>The matrix-multiply peak (FLOP/s) that model FLOPs utilisation is reported against; null measures it once per process.</summary>
    public double? PeakFlopsPerSecond { get; set; }

    /// <summary>Seed of the weights' noise, dropout and sampling, any value.</summary>
    public long Seed { get; set; } = 1337;

    /// <summary>
    /// The learning-rate schedule by name (warmup + cosine, SGDR, two-stage, constant) over <see cref="Steps"/>, from
    /// <see cref="LearningRate"/> to <see cref="MinLearningRate"/> after <see cref="WarmupSteps"/>: the form a config file
    /// holds (key <c>schedule</c>). <see cref="Schedule"/>, when set, overrides it.
    /// </summary>
    [System.Text.Json.Serialization.JsonPropertyName("schedule")]
    public Schedules.LearningRateScheduleOptions LearningRateSchedule { get; set; } = new();

    /// <summary>
    /// Any learning-rate schedule object over optimizer steps (0-based), e.g. a <see cref="Schedules.SequentialSchedule"/>;
    /// null follows <see cref="LearningRateSchedule"/>. Code only: a config file names its schedule in <c>schedule</c>.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Schedules.ILearningRateSchedule? Schedule { get; set; }

    /// <summary>The schedule the trainer follows: <see cref="Schedule"/>, or the one <see cref="LearningRateSchedule"/> names.</summary>
    /// <exception cref="ArgumentException">The named schedule does not fit these options (e.g. a milestone past the last step).</exception>
    public Schedules.ILearningRateSchedule CreateSchedule() => Schedule ?? LearningRateSchedule.Create(this);

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Steps is >= 1 and <= 100_000_000, nameof(Steps), Steps, "[1, 100000000]");
        errors.Require(BatchSize is >= 1 and <= 65_536, nameof(BatchSize), BatchSize, "[1, 65536]");
        errors.Require(GradientAccumulation is >= 1 and <= 4096, nameof(GradientAccumulation), GradientAccumulation, "[1, 4096]");
        errors.Require(LearningRate > 0 && LearningRate <= 10, nameof(LearningRate), LearningRate, "(0, 10]");
        errors.Require(MinLearningRate >= 0 && MinLearningRate <= LearningRate, nameof(MinLearningRate), MinLearningRate, $"[0, LearningRate = {LearningRate}]");
        errors.Require(WarmupSteps is >= 0 and <= 100_000_000, nameof(WarmupSteps), WarmupSteps, "[0, 100000000]");
        errors.Require(WeightDecay >= 0 && WeightDecay <= 10, nameof(WeightDecay), WeightDecay, "[0, 10]");
        errors.Require(Beta1 >= 0 && Beta1 < 1, nameof(Beta1), Beta1, "[0, 1)");
        errors.Require(RouterLearningRateMultiplier > 0 && RouterLearningRateMultiplier <= 100, nameof(RouterLearningRateMultiplier), RouterLearningRateMultiplier, "(0, 100]");
        errors.AddNested(nameof(ModuleGradientClip), ModuleGradientClip);
        errors.Require(Beta2 >= 0 && Beta2 < 1, nameof(Beta2), Beta2, "[0, 1)");
        errors.Require(GradientClip is not { } clip || (clip > 0 && clip <= 1e6), nameof(GradientClip), GradientClip, "(0, 1000000] or null");
        errors.Require(EvalInterval is >= 1 and <= 100_000_000, nameof(EvalInterval), EvalInterval, "[1, 100000000]");
        errors.Require(EvalBatches is >= 1 and <= 10_000, nameof(EvalBatches), EvalBatches, "[1, 10000]");
        errors.Require(LogInterval is >= 1 and <= 100_000_000, nameof(LogInterval), LogInterval, "[1, 100000000]");
        errors.AddNested(nameof(AdaptiveTopK), AdaptiveTopK);
        errors.Require(Enum.IsDefined(Precision), nameof(Precision), Precision, string.Join(", ", Enum.GetNames<TrainingPrecision>()));
        errors.AddNested(nameof(LossScaling), LossScaling);
        errors.AddNested(nameof(TokenMasking), TokenMasking);
        errors.AddNested(nameof(EarlyStopping), EarlyStopping);
        errors.Require(KeepCheckpoints is >= 1 and <= 1000, nameof(KeepCheckpoints), KeepCheckpoints, "[1, 1000]");
        errors.Require(PeakFlopsPerSecond is not { } peak || (double.IsFinite(peak) && peak > 0), nameof(PeakFlopsPerSecond), PeakFlopsPerSecond, "finite and > 0, or null");
        errors.Require(CheckpointIntervalMinutes is not { } minutes || (minutes > 0 && minutes <= 525_600),
            nameof(CheckpointIntervalMinutes), CheckpointIntervalMinutes, "(0, 525600] or null");
        errors.Require(Freeze is not null && !Freeze.Any(string.IsNullOrWhiteSpace), nameof(Freeze),
            Freeze is null ? null : string.Join(",", Freeze), "a list of non-empty patterns");
        errors.Require(LearningRateSchedule is not null, nameof(LearningRateSchedule), null, "a schedule");
        errors.AddNested(nameof(LearningRateSchedule), LearningRateSchedule);
        if (errors.Count == 0 && Schedule is null)
        {
            try
            {
                LearningRateSchedule!.Create(this); // the kind's own checks against this run (warmup, milestone, steps)
            }
            catch (ArgumentException ex)
            {
                errors.Add(new OptionError(nameof(LearningRateSchedule), LearningRateSchedule!.Kind, ex.Message));
            }
        }

        errors.Require(CheckpointInterval is not { } ci || ci is >= 1 and <= 100_000_000, nameof(CheckpointInterval), CheckpointInterval, "[1, 100000000] or null");
        return errors;
    }
}
