using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Schedules;

/// <summary>
/// Linear warmup (<c>peak · (step + 1) / W</c> for <c>step &lt; W</c>), then cosine annealing with warm restarts
/// (SGDR, Loshchilov &amp; Hutter), exactly PyTorch's <c>CosineAnnealingWarmRestarts</c> with epoch = <c>step − W</c>:
/// <c>lr = eta_min + (peak − eta_min) · (1 + cos(π · T_cur / T_i)) / 2</c>, where cycle <c>i</c> lasts
/// <c>T_i = T_0 · T_mult^i</c> steps and <c>T_cur</c> counts steps since the last restart.
/// </summary>
/// <remarks>
/// The cycle is located with exact integer arithmetic. PyTorch's closed form
/// (<c>n = int(log(epoch / T_0 · (T_mult − 1) + 1, T_mult))</c>) computes the same cycle except where floating-point
/// rounding of the logarithm lands just below an integer at a restart; PyTorch's step-by-step bookkeeping
/// (<c>T_cur += 1; if T_cur ≥ T_i: T_cur −= T_i; T_i *= T_mult</c>) agrees with this type everywhere.
/// </remarks>
public sealed class WarmupCosineRestartsSchedule : ILearningRateSchedule
{
    private readonly double _peak;
    private readonly double _min;
    private readonly long _warmup;
    private readonly long _t0;
    private readonly long _tMult;

    /// <summary>Creates the schedule from validated options (the values are copied).</summary>
    /// <param name="options">The options.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public WarmupCosineRestartsSchedule(WarmupCosineRestartsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid();
        (_peak, _min, _warmup, _t0, _tMult) =
            (options.PeakLearningRate, options.MinLearningRate, options.WarmupSteps, options.FirstCycleSteps, options.CycleMultiplier);
    }

    /// <inheritdoc />
    public double At(long step)
    {
        ScheduleGuards.NonNegativeStep(step);
        if (step < _warmup) return _peak * ScheduleGuards.WarmupFactor(step, _warmup);
        (long tCur, long tI) = CycleAt(step);
        return ScheduleGuards.Cosine(_peak, _min, tCur / (double)tI);
    }

    /// <summary>
    /// The position in the SGDR cycle at <paramref name="step"/>: <c>CycleStep</c> (<c>T_cur</c>, steps since the last
    /// restart) and <c>CycleLength</c> (<c>T_i</c>). During warmup this is (0, <c>T_0</c>).
    /// </summary>
    /// <param name="step">The 0-based optimizer step; &gt;= 0.</param>
    /// <exception cref="ArgumentException"><paramref name="step"/> is negative.</exception>
    public (long CycleStep, long CycleLength) CycleAt(long step)
    {
        ScheduleGuards.NonNegativeStep(step);
        long epoch = Math.Max(0, step - _warmup);
        long start = 0;
        long length = _t0;
        while (epoch - start >= length)
        {
            start += length;
            length = checked(length * _tMult);
        }

        return (epoch - start, length);
    }
}
