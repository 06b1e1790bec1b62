namespace YingHub.Moe.Training.Tracking;

/// <summary>A call that one sink of a <see cref="CompositeTracker"/> failed.</summary>
/// <param name="Sink">The sink's type name.</param>
/// <param name="Operation">The call that failed, e.g. <c>LogMetrics</c>.</param>
/// <param name="Exception">What the sink threw.</param>
public sealed record TrackerFailure(string Sink, string Operation, Exception Exception);
