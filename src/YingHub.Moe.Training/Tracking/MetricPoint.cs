namespace YingHub.Moe.Training.Tracking;

/// <summary>One value of a metric at an optimizer step.</summary>
/// <param name="Step">The optimizer step.</param>
/// <param name="Value">The metric's value.</param>
public readonly record struct MetricPoint(long Step, double Value);
