using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// Writes what a run reports to an <see cref="ILogger"/>: one structured Information line per
/// <see cref="LogMetrics"/> call (<c>{Step}</c> and <c>{Metrics}</c>). Ordinary metrics are listed as
/// <c>name=value</c>; the <c>expert_load/{layer}/{expert}</c> fractions are summarised as
/// <c>expert_load[layers×experts min=… max=… (l{layer}/e{expert})]</c>, naming the busiest expert, so a model with
/// hundreds of experts still logs one readable line.
/// </summary>
public sealed class LoggerTracker : ITrainingTracker
{
    private readonly ILogger _logger;

    /// <summary>A tracker that logs to <paramref name="logger"/>.</summary>
    /// <param name="logger">The destination.</param>
    public LoggerTracker(ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        _logger = logger;
    }

    /// <inheritdoc />
    public void LogParameters(IReadOnlyDictionary<string, string> parameters)
    {
        TrackerGuards.Strings(parameters, nameof(parameters));
        _logger.LogInformation("parameters: {Parameters}", string.Join(", ", parameters.Select(p => $"{p.Key}={p.Value}")));
    }

    /// <inheritdoc />
    public void LogMetrics(long step, IReadOnlyDictionary<string, double> metrics)
    {
        TrackerGuards.Metrics(step, metrics);
        _logger.LogInformation("step {Step}: {Metrics}", step, Summarise(metrics));
    }

    /// <inheritdoc />
    public void SetTags(IReadOnlyDictionary<string, string> tags)
    {
        TrackerGuards.Strings(tags, nameof(tags));
        _logger.LogInformation("tags: {Tags}", string.Join(", ", tags.Select(p => $"{p.Key}={p.Value}")));
    }

    /// <inheritdoc />
    public void LogArtifact(string path)
    {
        string full = TrackerGuards.ExistingFile(path);
        _logger.LogInformation("artifact: {Path}", full);
    }

    /// <inheritdoc />
    public void Complete(TrainingRunStatus status) => _logger.LogInformation("run ended: {Status}", status);

    /// <inheritdoc />
    public void Dispose()
    {
    }

    /// <summary>The text of one metrics line: <c>name=value</c> pairs, then a summary of the expert loads.</summary>
    /// <param name="metrics">The metrics of one step.</param>
    internal static string Summarise(IReadOnlyDictionary<string, double> metrics)
    {
        var text = new StringBuilder();
        int loads = 0, maxLayer = -1, maxExpert = -1, busiestLayer = -1, busiestExpert = -1;
        double min = double.PositiveInfinity, max = double.NegativeInfinity;
        foreach (var (name, value) in metrics)
        {
            if (MetricNames.TryParseExpertLoad(name, out int layer, out int expert))
            {
                loads++;
                maxLayer = Math.Max(maxLayer, layer);
                maxExpert = Math.Max(maxExpert, expert);
                min = Math.Min(min, value);
                if (value > max) (max, busiestLayer, busiestExpert) = (value, layer, expert);
                continue;
            }

            if (text.Length > 0) text.Append(' ');
            text.Append(name).Append('=').Append(value.ToString("G5", CultureInfo.InvariantCulture));
        }

        if (loads > 0)
        {
            if (text.Length > 0) text.Append(' ');
            text.Append(CultureInfo.InvariantCulture,
                $"expert_load[{maxLayer + 1}x{maxExpert + 1} min={min:F3} max={max:F3} (l{busiestLayer}/e{busiestExpert})]");
        }

        return text.ToString();
    }
}
