namespace YingHub.Moe.Training.Tests.Tracking;

/// <summary>A tracker that records calls, optionally throwing from one of them.</summary>
internal sealed class RecordingTracker(string? throwIn = null) : YingHub.Moe.Training.Tracking.ITrainingTracker
{
    public List<string> Calls { get; } = [];

    public List<string> Artifacts { get; } = [];

    private void Record(string call)
    {
        Calls.Add(call);
        if (call == throwIn) throw new IOException($"sink failed in {call}");
    }

    public void LogParameters(IReadOnlyDictionary<string, string> parameters) => Record(nameof(LogParameters));

    public void LogMetrics(long step, IReadOnlyDictionary<string, double> metrics) => Record(nameof(LogMetrics));

    public void SetTags(IReadOnlyDictionary<string, string> tags) => Record(nameof(SetTags));

    public void LogArtifact(string path)
    {
        Artifacts.Add(path);
        Record(nameof(LogArtifact));
    }

    public void Complete(YingHub.Moe.Training.Tracking.TrainingRunStatus status) => Record(nameof(Complete));

    public void Dispose() => Record(nameof(Dispose));
}
