using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Optimization;

/// <summary>The outcome of one <see cref="EarlyStopping.Update"/>.</summary>
/// <param name="Improved">This evaluation is the new best (the trainer saves the best checkpoint).</param>
/// <param name="ShouldStop">Patience is exhausted: stop training (and restore the best weights if <paramref name="RestoreBestWeights"/>).</param>
/// <param name="BestStep">The step of the best evaluation so far, or null when no finite loss was seen.</param>
/// <param name="BestLoss">The best validation loss so far (+infinity when none).</param>
/// <param name="EvaluationsWithoutImprovement">Evaluations since the best one.</param>
/// <param name="RestoreBestWeights">Whether the best weights should be restored on stopping.</param>
public sealed record EarlyStoppingDecision(
    bool Improved, bool ShouldStop, long? BestStep, double BestLoss, int EvaluationsWithoutImprovement, bool RestoreBestWeights);

/// <summary>The resumable state of an <see cref="EarlyStopping"/> (save it with the checkpoint).</summary>
/// <param name="BestStep">The step of the best evaluation, or null.</param>
/// <param name="BestLoss">The best loss (+infinity when none).</param>
/// <param name="EvaluationsWithoutImprovement">Evaluations since the best one.</param>
/// <param name="LastStep">The step of the last evaluation, or null.</param>
public sealed record EarlyStoppingState(long? BestStep, double BestLoss, int EvaluationsWithoutImprovement, long? LastStep);

/// <summary>
/// Early stopping on validation loss: an evaluation improves when its loss is below <c>best − MinDelta</c>; after
/// <c>Patience</c> evaluations without improvement, <see cref="EarlyStoppingDecision.ShouldStop"/> becomes true and
/// stays true. A NaN or infinite loss never improves and counts against patience. Pure logic, no tensors.
/// </summary>
public sealed class EarlyStopping
{
    private readonly int _patience;
    private readonly double _minDelta;
    private readonly bool _restore;
    private EarlyStoppingState _state = new(null, double.PositiveInfinity, 0, null);

    /// <summary>Creates the tracker from validated options (the values are copied).</summary>
    /// <param name="options">The options.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public EarlyStopping(EarlyStoppingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid();
        (_patience, _minDelta, _restore) = (options.Patience, options.MinDelta, options.RestoreBestWeights);
    }

    /// <summary>The current state, for checkpoints.</summary>
    public EarlyStoppingState State => _state;

    /// <summary>True once patience is exhausted.</summary>
    public bool ShouldStop => _state.EvaluationsWithoutImprovement >= _patience;

    /// <summary>Records the validation loss of <paramref name="step"/>.</summary>
    /// <param name="step">The step of the evaluation; &gt;= 0 and greater than the previous evaluation's step.</param>
    /// <param name="validationLoss">The validation loss (NaN and infinities count as no improvement).</param>
    /// <exception cref="ArgumentException"><paramref name="step"/> is negative or not after the previous evaluation.</exception>
    public EarlyStoppingDecision Update(long step, double validationLoss)
    {
        if (step < 0 || step <= (_state.LastStep ?? -1))
            throw new ArgumentException(
                $"step = {step} is invalid; allowed: >= 0 and > the previous evaluation's step ({_state.LastStep?.ToString() ?? "none"}).", nameof(step));

        bool improved = double.IsFinite(validationLoss) &&
                        (_state.BestStep is null || validationLoss < _state.BestLoss - _minDelta);
        _state = improved
            ? new EarlyStoppingState(step, validationLoss, 0, step)
            : _state with { EvaluationsWithoutImprovement = _state.EvaluationsWithoutImprovement + 1, LastStep = step };
        return new EarlyStoppingDecision(improved, ShouldStop, _state.BestStep, _state.BestLoss, _state.EvaluationsWithoutImprovement, _restore);
    }

    /// <summary>Restores a state saved from <see cref="State"/> (on resume).</summary>
    /// <param name="state">The saved state.</param>
    /// <exception cref="ArgumentException">The state is inconsistent (negative counts, or a best step without a finite loss).</exception>
    public void Restore(EarlyStoppingState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (state.EvaluationsWithoutImprovement < 0)
            throw new ArgumentException($"state.EvaluationsWithoutImprovement = {state.EvaluationsWithoutImprovement} is invalid; allowed: >= 0.", nameof(state));
        if (state.BestStep is not null && !double.IsFinite(state.BestLoss))
            throw new ArgumentException($"state.BestLoss = {state.BestLoss} is invalid with BestStep = {state.BestStep}; allowed: finite.", nameof(state));
        _state = state;
    }
}
