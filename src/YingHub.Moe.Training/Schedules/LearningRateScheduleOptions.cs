using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Schedules;

/// <summary>The learning-rate schedules a <see cref="TrainerOptions"/> can name (Hugging Face's <c>lr_scheduler_type</c>).</summary>
public enum LearningRateScheduleKind
{
    /// <summary>Linear warmup, then one cosine decay to the minimum at the last step (<see cref="WarmupCosineSchedule"/>).</summary>
    WarmupCosine,

    /// <summary>Linear warmup, then cosine annealing with warm restarts (SGDR, PyTorch's <c>CosineAnnealingWarmRestarts</c>; <see cref="WarmupCosineRestartsSchedule"/>).</summary>
    Sgdr,

    /// <summary>Warmup and a cosine to the minimum at a milestone, then a second cosine from its own peak (YingHub-v2; <see cref="TwoStageCosineSchedule"/>).</summary>
    TwoStage,

    /// <summary>Linear warmup, then the peak rate to the end.</summary>
    Constant,
}

/// <summary>
/// A learning-rate schedule by name and parameters, so it can live in a config file: the peak, minimum, warmup and run
/// length come from the <see cref="TrainerOptions"/> that holds it (<see cref="Create"/>); this adds what each kind needs
/// beyond them. JSON keys (snake_case): <c>kind</c>, <c>t0</c>, <c>t_mult</c>, <c>milestone_step</c>,
/// <c>second_peak_learning_rate</c>, <c>second_min_learning_rate</c>.
/// </summary>
public sealed class LearningRateScheduleOptions : IValidatableOptions
{
    /// <summary>Which schedule.</summary>
    public LearningRateScheduleKind Kind { get; set; } = LearningRateScheduleKind.WarmupCosine;

    /// <summary><see cref="LearningRateScheduleKind.Sgdr"/>: the first cycle's length in steps (<c>T_0</c>), &gt;= 1; null: the whole run after warmup (one cycle).</summary>
    public long? T0 { get; set; }

    /// <summary><see cref="LearningRateScheduleKind.Sgdr"/>: each cycle is this many times longer than the one before (<c>T_mult</c>, an integer), &gt;= 1.</summary>
    public long TMult { get; set; } = 1;

    /// <summary><see cref="LearningRateScheduleKind.TwoStage"/>: the step at which the second stage starts, in (warmup, steps); null: half the run.</summary>
    public long? MilestoneStep { get; set; }

    /// <summary><see cref="LearningRateScheduleKind.TwoStage"/>: the second stage's peak, &gt; 0; null: the trainer's learning rate.</summary>
    public double? SecondPeakLearningRate { get; set; }

    /// <summary><see cref="LearningRateScheduleKind.TwoStage"/>: the second stage's minimum, in [0, second peak]; null: the trainer's minimum.</summary>
    public double? SecondMinLearningRate { get; set; }

    /// <summary>The schedule for a run of <paramref name="trainer"/>'s steps, peak, minimum and warmup.</summary>
    /// <exception cref="ArgumentException">The combination is invalid (e.g. a milestone past the end); the message names the field.</exception>
    public ILearningRateSchedule Create(TrainerOptions trainer)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        double peak = trainer.LearningRate, min = trainer.MinLearningRate;
        long warmup = trainer.WarmupSteps, steps = trainer.Steps;
        return Kind switch
        {
            LearningRateScheduleKind.WarmupCosine => new WarmupCosineSchedule(new WarmupCosineOptions
            {
                PeakLearningRate = peak, MinLearningRate = min, WarmupSteps = warmup, TotalSteps = Math.Max(steps, warmup + 1),
            }),
            // a cosine from the peak to the peak is flat: warmup, then constant
            LearningRateScheduleKind.Constant => new WarmupCosineSchedule(new WarmupCosineOptions
            {
                PeakLearningRate = peak, MinLearningRate = peak, WarmupSteps = warmup, TotalSteps = Math.Max(steps, warmup + 1),
            }),
            LearningRateScheduleKind.Sgdr => new WarmupCosineRestartsSchedule(new WarmupCosineRestartsOptions
            {
                PeakLearningRate = peak, MinLearningRate = min, WarmupSteps = warmup, FirstCycleSteps = T0 ?? Math.Max(1, steps - warmup), CycleMultiplier = TMult,
            }),
            LearningRateScheduleKind.TwoStage => new TwoStageCosineSchedule(new TwoStageCosineOptions
            {
                WarmupSteps = warmup, MilestoneStep = MilestoneStep ?? Math.Max(warmup + 1, steps / 2), TotalSteps = steps,
                FirstPeakLearningRate = peak, FirstMinLearningRate = min,
                SecondPeakLearningRate = SecondPeakLearningRate ?? peak, SecondMinLearningRate = SecondMinLearningRate ?? min,
            }),
            _ => throw new ArgumentException($"Kind = {Kind} is invalid; allowed: {string.Join(", ", Enum.GetNames<LearningRateScheduleKind>())}.", nameof(trainer)),
        };
    }

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Enum.IsDefined(Kind), nameof(Kind), Kind, string.Join(", ", Enum.GetNames<LearningRateScheduleKind>()));
        errors.Require(T0 is not { } t0 || t0 >= 1, nameof(T0), T0, ">= 1 or null");
        errors.Require(TMult >= 1, nameof(TMult), TMult, ">= 1 (an integer)");
        errors.Require(MilestoneStep is not { } m || m >= 1, nameof(MilestoneStep), MilestoneStep, ">= 1 or null");
        errors.Require(SecondPeakLearningRate is not { } p || (double.IsFinite(p) && p > 0), nameof(SecondPeakLearningRate), SecondPeakLearningRate, "finite and > 0, or null");
        errors.Require(SecondMinLearningRate is not { } q || (double.IsFinite(q) && q >= 0 && (SecondPeakLearningRate is not { } peak || q <= peak)),
            nameof(SecondMinLearningRate), SecondMinLearningRate, "finite, in [0, SecondPeakLearningRate], or null");
        return errors;
    }
}
