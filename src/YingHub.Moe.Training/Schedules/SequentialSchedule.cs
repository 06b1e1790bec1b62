namespace YingHub.Moe.Training.Schedules;

/// <summary>
/// Runs schedules one after another, as PyTorch's <c>SequentialLR</c>: schedule <c>i</c> is active from milestone
/// <c>i − 1</c> (or step 0) up to milestone <c>i</c>, and sees the step counted from the start of its own segment.
/// </summary>
public sealed class SequentialSchedule : ILearningRateSchedule
{
    private readonly ILearningRateSchedule[] _schedules;
    private readonly long[] _milestones;

    /// <summary>Creates a sequence of schedules switching at <paramref name="milestones"/>.</summary>
    /// <param name="schedules">At least one schedule.</param>
    /// <param name="milestones">The switch steps: one fewer than the schedules, &gt; 0 and strictly increasing.</param>
    /// <exception cref="ArgumentException">The counts do not match or a milestone is out of order.</exception>
    public SequentialSchedule(IReadOnlyList<ILearningRateSchedule> schedules, IReadOnlyList<long> milestones)
    {
        ArgumentNullException.ThrowIfNull(schedules);
        ArgumentNullException.ThrowIfNull(milestones);
        if (schedules.Count == 0)
            throw new ArgumentException("schedules.Count = 0 is invalid; allowed: >= 1.", nameof(schedules));
        if (milestones.Count != schedules.Count - 1)
            throw new ArgumentException(
                $"milestones.Count = {milestones.Count} is invalid; allowed: schedules.Count - 1 = {schedules.Count - 1}.", nameof(milestones));
        for (int i = 0; i < milestones.Count; i++)
        {
            long previous = i == 0 ? 0 : milestones[i - 1];
            if (milestones[i] <= previous)
                throw new ArgumentException(
                    $"milestones[{i}] = {milestones[i]} is invalid; allowed: > {previous} (positive, strictly increasing).", nameof(milestones));
        }

        _schedules = schedules.Select((s, i) => s ?? throw new ArgumentException($"schedules[{i}] is null.", nameof(schedules))).ToArray();
        _milestones = milestones.ToArray();
    }

    /// <inheritdoc />
    public double At(long step)
    {
        ScheduleGuards.NonNegativeStep(step);
        int segment = 0;
        while (segment < _milestones.Length && step >= _milestones[segment]) segment++;
        long offset = segment == 0 ? 0 : _milestones[segment - 1];
        return _schedules[segment].At(step - offset);
    }
}
