using System.Text.Json;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// Appends a run's records to a JSON Lines file, one object per line, flushed at every line so a crash loses nothing
/// and a dashboard can follow the run:
/// <list type="bullet">
/// <item><c>{"step":100,"time":"2026-01-01T12:00:00.0000000Z","train/loss":2.5,...}</c> per <see cref="LogMetrics"/> call
/// (metric names as keys; NaN and infinities are written as the strings <c>"NaN"</c>, <c>"Infinity"</c>, <c>"-Infinity"</c>);</item>
/// <item><c>{"type":"params","time":...,"params":{...}}</c>, <c>{"type":"tags",...,"tags":{...}}</c>,
/// <c>{"type":"artifact",...,"path":"..."}</c> and <c>{"type":"status",...,"status":"Finished"}</c>.</item>
/// </list>
/// Lines without <c>type</c> are metrics. <c>time</c> is UTC ISO 8601.
/// </summary>
public sealed class JsonlTracker : ITrainingTracker
{
    private readonly StreamWriter _writer;
    private bool _disposed;

    /// <summary>Appends to <paramref name="path"/> (created with its directory if needed).</summary>
    /// <param name="path">The file to append to.</param>
    public JsonlTracker(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Path = System.IO.Path.GetFullPath(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
        _writer = new StreamWriter(new FileStream(Path, FileMode.Append, FileAccess.Write, FileShare.Read));
    }

    /// <summary>The file written.</summary>
    public string Path { get; }

    /// <inheritdoc />
    public void LogParameters(IReadOnlyDictionary<string, string> parameters)
    {
        TrackerGuards.Strings(parameters, nameof(parameters));
        WriteRecord("params", w => WriteStrings(w, "params", parameters));
    }

    /// <inheritdoc />
    public void LogMetrics(long step, IReadOnlyDictionary<string, double> metrics)
    {
        TrackerGuards.Metrics(step, metrics);
        Write(w =>
        {
            w.WriteNumber("step", step);
            WriteTime(w);
            foreach (var (name, value) in metrics)
            {
                if (double.IsFinite(value)) w.WriteNumber(name, value);
                else w.WriteString(name, double.IsNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity");
            }
        });
    }

    /// <inheritdoc />
    public void SetTags(IReadOnlyDictionary<string, string> tags)
    {
        TrackerGuards.Strings(tags, nameof(tags));
        WriteRecord("tags", w => WriteStrings(w, "tags", tags));
    }

    /// <inheritdoc />
    public void LogArtifact(string path)
    {
        string full = TrackerGuards.ExistingFile(path);
        WriteRecord("artifact", w => w.WriteString("path", full));
    }

    /// <inheritdoc />
    public void Complete(TrainingRunStatus status) => WriteRecord("status", w => w.WriteString("status", status.ToString()));

    /// <inheritdoc />
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _writer.Dispose();
    }

    private void WriteRecord(string type, Action<Utf8JsonWriter> body) => Write(w =>
    {
        w.WriteString("type", type);
        WriteTime(w);
        body(w);
    });

    private void Write(Action<Utf8JsonWriter> body)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }

        _writer.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length));
        _writer.Flush();
    }

    private static void WriteTime(Utf8JsonWriter w) => w.WriteString("time", DateTime.UtcNow);

    private static void WriteStrings(Utf8JsonWriter w, string name, IReadOnlyDictionary<string, string> values)
    {
        w.WriteStartObject(name);
        foreach (var (key, value) in values) w.WriteString(key, value);
        w.WriteEndObject();
    }
}
