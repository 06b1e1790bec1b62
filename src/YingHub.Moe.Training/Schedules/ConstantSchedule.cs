namespace YingHub.Moe.Training.Schedules;

/// <summary>The same learning rate at every step.</summary>
public sealed class ConstantSchedule : ILearningRateSchedule
{
    /// <summary>Creates a constant schedule.</summary>
    /// <param name="learningRate">The learning rate; finite and &gt; 0.</param>
    /// <exception cref="ArgumentException"><paramref name="learningRate"/> is not finite or not positive.</exception>
    public ConstantSchedule(double learningRate)
    {
        if (!double.IsFinite(learningRate) || learningRate <= 0)
            throw new ArgumentException($"learningRate = {learningRate} is invalid; allowed: finite and > 0.", nameof(learningRate));
        LearningRate = learningRate;
    }

    /// <summary>The constant learning rate.</summary>
    public double LearningRate { get; }

    /// <inheritdoc />
    public double At(long step)
    {
        ScheduleGuards.NonNegativeStep(step);
        return LearningRate;
    }
}
