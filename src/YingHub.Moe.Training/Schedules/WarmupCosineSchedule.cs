using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Schedules;

/// <summary>
/// Linear warmup, then a half-cosine decay to a minimum, then the minimum:
/// <list type="bullet">
/// <item><c>step &lt; W</c>: <c>peak · (step + 1) / W</c> (the first step already trains; step <c>W − 1</c> reaches the peak);</item>
/// <item><c>W ≤ step &lt; N</c>: <c>min + (peak − min) · (1 + cos(π · (step − W) / (N − W))) / 2</c>;</item>
/// <item><c>step ≥ N</c>: <c>min</c>,</item>
/// </list>
/// where <c>W</c> = <see cref="WarmupCosineOptions.WarmupSteps"/> and <c>N</c> = <see cref="WarmupCosineOptions.TotalSteps"/>.
/// </summary>
public sealed class WarmupCosineSchedule : ILearningRateSchedule
{
    private readonly double _peak;
    private readonly double _min;
    private readonly long _warmup;
    private readonly long _total;

    /// <summary>Creates the schedule from validated options (the values are copied).</summary>
    /// <param name="options">The options.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public WarmupCosineSchedule(WarmupCosineOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid();
        (_peak, _min, _warmup, _total) = (options.PeakLearningRate, options.MinLearningRate, options.WarmupSteps, options.TotalSteps);
    }

    /// <inheritdoc />
    public double At(long step)
    {
        ScheduleGuards.NonNegativeStep(step);
        if (step < _warmup) return _peak * ScheduleGuards.WarmupFactor(step, _warmup);
        if (step >= _total) return _min;
        double progress = (step - _warmup) / (double)(_total - _warmup);
        return ScheduleGuards.Cosine(_peak, _min, progress);
    }
}
