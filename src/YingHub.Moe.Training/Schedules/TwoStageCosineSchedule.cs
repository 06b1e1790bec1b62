using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Schedules;

/// <summary>
/// The YingHub-v2 two-stage cosine: a <see cref="WarmupCosineSchedule"/> from step 0 to the milestone (warmup, then
/// first peak to first minimum), then a second <see cref="WarmupCosineSchedule"/> without warmup from the milestone to
/// the end (second peak to second minimum), composed with a <see cref="SequentialSchedule"/>.
/// </summary>
public sealed class TwoStageCosineSchedule : ILearningRateSchedule
{
    private readonly SequentialSchedule _inner;

    /// <summary>Creates the schedule from validated options (the values are copied).</summary>
    /// <param name="options">The options.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public TwoStageCosineSchedule(TwoStageCosineOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid();
        var first = new WarmupCosineSchedule(new WarmupCosineOptions
        {
            PeakLearningRate = options.FirstPeakLearningRate,
            MinLearningRate = options.FirstMinLearningRate,
            WarmupSteps = options.WarmupSteps,
            TotalSteps = options.MilestoneStep,
        });
        var second = new WarmupCosineSchedule(new WarmupCosineOptions
        {
            PeakLearningRate = options.SecondPeakLearningRate,
            MinLearningRate = options.SecondMinLearningRate,
            WarmupSteps = 0,
            TotalSteps = options.TotalSteps - options.MilestoneStep,
        });
        _inner = new SequentialSchedule([first, second], [options.MilestoneStep]);
    }

    /// <inheritdoc />
    public double At(long step) => _inner.At(step);
}
