namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// A sink for what a training run reports: hyperparameters, metrics per step (named as in <see cref="MetricNames"/>),
/// tags, artifacts (files such as PNG plots) and the final status. Implementations are called from the training
/// thread, one call at a time; they are not required to be thread-safe. <see cref="Complete"/> is called once at the end
/// of a run; <see cref="IDisposable.Dispose"/> releases resources (and, for a run that was never completed, may end it
/// as <see cref="TrainingRunStatus.Killed"/>).
/// </summary>
public interface ITrainingTracker : IDisposable
{
    /// <summary>Records the run's hyperparameters, once per run.</summary>
    /// <param name="parameters">Names and values; values are already formatted as text.</param>
    void LogParameters(IReadOnlyDictionary<string, string> parameters);

    /// <summary>Records a batch of metrics measured at one optimizer step.</summary>
    /// <param name="step">The optimizer step (&gt;= 0).</param>
    /// <param name="metrics">Metric names (see <see cref="MetricNames"/>) and values.</param>
    void LogMetrics(long step, IReadOnlyDictionary<string, double> metrics);

    /// <summary>Sets tags (free-form labels) on the run; a tag set again is overwritten.</summary>
    /// <param name="tags">Tag names and values.</param>
    void SetTags(IReadOnlyDictionary<string, string> tags);

    /// <summary>Records a file produced by the run (for example a PNG plot). The file must exist.</summary>
    /// <param name="path">The file's path.</param>
    void LogArtifact(string path);

    /// <summary>Ends the run with <paramref name="status"/> and flushes whatever the sink buffers.</summary>
    /// <param name="status">How the run ended.</param>
    void Complete(TrainingRunStatus status);
}
