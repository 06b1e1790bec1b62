using TorchSharp.Modules;
using static TorchSharp.torch.optim;

namespace YingHub.Moe.Training.Schedules;

/// <summary>
/// Sets the learning rate of every parameter group of a TorchSharp optimizer from an <see cref="ILearningRateSchedule"/>
/// at a given step: group <c>i</c> gets <c>schedule.At(step) · multiplier[i]</c> (e.g. the router group's LR
/// multiplier). Stateless apart from its inputs, so calling <see cref="Apply"/> with the resumed step is exact.
/// </summary>
public sealed class LearningRateApplier
{
    private readonly Optimizer _optimizer;
    private readonly double[] _multipliers;

    /// <summary>Creates an applier for <paramref name="optimizer"/>'s current parameter groups.</summary>
    /// <param name="optimizer">The optimizer whose groups are driven.</param>
    /// <param name="schedule">The base learning-rate schedule.</param>
    /// <param name="groupMultipliers">One finite, positive multiplier per parameter group, in group order; null means 1 for every group.</param>
    /// <exception cref="ArgumentException">The multiplier count differs from the group count, or a multiplier is not finite and positive.</exception>
    public LearningRateApplier(Optimizer optimizer, ILearningRateSchedule schedule, IReadOnlyList<double>? groupMultipliers = null)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        ArgumentNullException.ThrowIfNull(schedule);
        _optimizer = optimizer;
        Schedule = schedule;
        int groupCount = optimizer.ParamGroups.Count();
        _multipliers = groupMultipliers?.ToArray() ?? Enumerable.Repeat(1.0, groupCount).ToArray();
        if (_multipliers.Length != groupCount)
            throw new ArgumentException(
                $"groupMultipliers.Count = {_multipliers.Length} is invalid; allowed: the optimizer's group count = {groupCount}.", nameof(groupMultipliers));
        for (int i = 0; i < _multipliers.Length; i++)
        {
            if (!double.IsFinite(_multipliers[i]) || _multipliers[i] <= 0)
                throw new ArgumentException($"groupMultipliers[{i}] = {_multipliers[i]} is invalid; allowed: finite and > 0.", nameof(groupMultipliers));
        }
    }

    /// <summary>The base schedule.</summary>
    public ILearningRateSchedule Schedule { get; }

    /// <summary>The per-group multipliers, in group order.</summary>
    public IReadOnlyList<double> GroupMultipliers => _multipliers;

    /// <summary>Sets every group's learning rate for <paramref name="step"/> and returns the base (multiplier 1) rate.</summary>
    /// <param name="step">The 0-based optimizer step about to be taken; &gt;= 0.</param>
    /// <exception cref="ArgumentException"><paramref name="step"/> is negative.</exception>
    /// <exception cref="InvalidOperationException">The optimizer's group count changed since construction.</exception>
    public double Apply(long step)
    {
        double lr = Schedule.At(step);
        // the optimizer's current groups: load_state_dict may replace the group objects seen at construction
        var groups = _optimizer.ParamGroups.ToArray();
        if (groups.Length != _multipliers.Length)
            throw new InvalidOperationException(
                $"The optimizer now has {groups.Length} parameter groups, the applier was built for {_multipliers.Length}.");
        for (int i = 0; i < groups.Length; i++) groups[i].LearningRate = lr * _multipliers[i];
        return lr;
    }

    /// <summary>The rate each group gets at <paramref name="step"/>, without touching the optimizer.</summary>
    /// <param name="step">The 0-based optimizer step; &gt;= 0.</param>
    public IReadOnlyList<double> GroupRatesAt(long step)
    {
        double lr = Schedule.At(step);
        return _multipliers.Select(m => lr * m).ToArray();
    }
}
