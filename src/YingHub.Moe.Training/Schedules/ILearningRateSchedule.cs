namespace YingHub.Moe.Training.Schedules;

/// <summary>
/// A learning rate as a pure function of the optimizer step. The trainer recomputes the rate from the step count on
/// every step, so resuming from a checkpoint at step <c>s</c> reproduces the rate exactly (TorchSharp schedulers keep
/// no <c>state_dict</c>).
/// </summary>
public interface ILearningRateSchedule
{
    /// <summary>The learning rate for the optimizer step <paramref name="step"/> (0-based).</summary>
    /// <param name="step">The 0-based optimizer step; must be &gt;= 0.</param>
    /// <exception cref="ArgumentException"><paramref name="step"/> is negative.</exception>
    double At(long step);
}
