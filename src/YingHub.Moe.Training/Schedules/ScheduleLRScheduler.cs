using static TorchSharp.torch.optim;
using static TorchSharp.torch.optim.lr_scheduler;

namespace YingHub.Moe.Training.Schedules;

/// <summary>
/// A TorchSharp <see cref="LRScheduler"/> driven by an <see cref="ILearningRateSchedule"/>, for code that expects the
/// PyTorch idiom (<c>optimizer.step(); scheduler.step();</c>). Construction sets the rate of
/// the start step; each <see cref="step(int?)"/> advances one step and sets that step's rate (times each
/// group's multiplier). To resume, construct it with the checkpoint's step: the rate is recomputed, not restored.
/// </summary>
public sealed class ScheduleLRScheduler : LRScheduler
{
    private readonly LearningRateApplier _applier;

    /// <summary>Creates the scheduler and applies the rate of <paramref name="startStep"/>.</summary>
    /// <param name="optimizer">The optimizer whose groups are driven.</param>
    /// <param name="schedule">The base schedule.</param>
    /// <param name="groupMultipliers">One multiplier per group (see <see cref="LearningRateApplier"/>); null means 1.</param>
    /// <param name="startStep">The step whose rate is set now; &gt;= 0.</param>
    /// <exception cref="ArgumentException">Invalid multipliers or a negative <paramref name="startStep"/>.</exception>
    public ScheduleLRScheduler(Optimizer optimizer, ILearningRateSchedule schedule, IReadOnlyList<double>? groupMultipliers = null, long startStep = 0)
        : base(optimizer)
    {
        ScheduleGuards.NonNegativeStep(startStep, nameof(startStep));
        _applier = new LearningRateApplier(optimizer, schedule, groupMultipliers);
        CurrentStep = startStep - 1;
        step();
    }

    /// <summary>The step whose rate is currently set.</summary>
    public long CurrentStep { get; private set; }

    /// <summary>Advances to the next step (or to <paramref name="epoch"/> when given) and sets its rate.</summary>
    /// <param name="epoch">An explicit step to jump to, or null for the next one.</param>
    public override void step(int? epoch)
    {
        CurrentStep = epoch ?? CurrentStep + 1;
        base.step(epoch);
    }

    /// <summary>The per-group rates of <see cref="CurrentStep"/>.</summary>
    protected override IEnumerable<double> get_lr() => _applier.GroupRatesAt(CurrentStep);
}
