using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// Sends every call to several trackers, in the order given. Tracking must not stop training, so an exception thrown
/// by one sink is caught, logged (the first failure of each sink at Error level with the exception, later ones at
/// Debug) and recorded in <see cref="Failures"/>, and the other sinks still receive the call. <see cref="Complete"/>
/// completes every sink and then reports the failures of the run in one Warning line; it does not throw, so a run that
/// trained well is not turned into a failed one by a tracking outage. Callers who must know inspect
/// <see cref="Failures"/>. Argument errors (null dictionaries, negative steps) are checked before fan-out and do throw.
/// Dispose disposes every sink, in order.
/// </summary>
public sealed class CompositeTracker : ITrainingTracker
{
    private readonly ITrainingTracker[] _sinks;
    private readonly ILogger _logger;
    private readonly List<TrackerFailure> _failures = [];
    private readonly HashSet<ITrainingTracker> _reported = [];
    private bool _disposed;

    /// <summary>A tracker fanning out to <paramref name="sinks"/>, which it owns (disposes).</summary>
    /// <param name="sinks">The trackers, called in this order (put a <see cref="PlotTracker"/> before the sink it reports artifacts to).</param>
    /// <param name="logger">Receives sink failures; null discards them.</param>
    public CompositeTracker(IEnumerable<ITrainingTracker> sinks, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(sinks);
        _sinks = sinks.ToArray();
        for (int i = 0; i < _sinks.Length; i++)
        {
            if (_sinks[i] is null) throw new ArgumentException($"sinks[{i}] is null.", nameof(sinks));
        }

        _logger = logger ?? NullLogger.Instance;
    }

    /// <summary>The trackers receiving the calls.</summary>
    public IReadOnlyList<ITrainingTracker> Sinks => _sinks;

    /// <summary>Every call a sink failed so far, in order.</summary>
    public IReadOnlyList<TrackerFailure> Failures => _failures;

    /// <inheritdoc />
    public void LogParameters(IReadOnlyDictionary<string, string> parameters)
    {
        TrackerGuards.Strings(parameters, nameof(parameters));
        ForEach(nameof(LogParameters), s => s.LogParameters(parameters));
    }

    /// <inheritdoc />
    public void LogMetrics(long step, IReadOnlyDictionary<string, double> metrics)
    {
        TrackerGuards.Metrics(step, metrics);
        ForEach(nameof(LogMetrics), s => s.LogMetrics(step, metrics));
    }

    /// <inheritdoc />
    public void SetTags(IReadOnlyDictionary<string, string> tags)
    {
        TrackerGuards.Strings(tags, nameof(tags));
        ForEach(nameof(SetTags), s => s.SetTags(tags));
    }

    /// <inheritdoc />
    public void LogArtifact(string path)
    {
        TrackerGuards.ExistingFile(path);
        ForEach(nameof(LogArtifact), s => s.LogArtifact(path));
    }

    /// <inheritdoc />
    public void Complete(TrainingRunStatus status)
    {
        ForEach(nameof(Complete), s => s.Complete(status));
        if (_failures.Count > 0)
        {
            string summary = string.Join(", ", _failures.GroupBy(f => f.Sink).Select(g => $"{g.Key} x{g.Count()} (first: {g.First().Operation}: {g.First().Exception.Message})"));
            _logger.LogWarning("Run ended {Status} with {Count} tracking failures: {Summary}", status, _failures.Count, summary);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        ForEach(nameof(Dispose), s => s.Dispose());
    }

    private void ForEach(string operation, Action<ITrainingTracker> call)
    {
        ObjectDisposedException.ThrowIf(_disposed && operation != nameof(Dispose), this);
        foreach (ITrainingTracker sink in _sinks)
        {
            try
            {
                call(sink);
            }
            catch (Exception e)
            {
                string name = sink.GetType().Name;
                _failures.Add(new TrackerFailure(name, operation, e));
                if (_reported.Add(sink)) _logger.LogError(e, "Tracker {Sink} failed in {Operation}; the other trackers continue", name, operation);
                else _logger.LogDebug(e, "Tracker {Sink} failed again in {Operation}", name, operation);
            }
        }
    }
}
