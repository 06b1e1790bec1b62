using System.Text.Json;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// Appends one JSON object per <see cref="TrainingProgress"/> to a file (JSON Lines: <c>step</c>, <c>train_loss</c>,
/// <c>val_loss</c>, <c>lr</c>, <c>tokens_per_s</c>, <c>time</c>), flushed at every line so a crash loses nothing and a
/// plot or dashboard can follow the run. Subscribe it with <c>trainer.Progress += writer.Write</c>.
/// </summary>
public sealed class JsonlMetricsWriter : IDisposable
{
    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private readonly StreamWriter _writer;

    /// <summary>Appends to <paramref name="path"/> (created with its directory if needed).</summary>
    public JsonlMetricsWriter(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!);
        _writer = new StreamWriter(new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read));
        Path = System.IO.Path.GetFullPath(path);
    }

    /// <summary>The file written.</summary>
    public string Path { get; }

    /// <summary>Writes one line.</summary>
    public void Write(TrainingProgress progress)
    {
        ArgumentNullException.ThrowIfNull(progress);
        _writer.WriteLine(JsonSerializer.Serialize(new
        {
            progress.Step,
            progress.TrainLoss,
            ValLoss = progress.ValidationLoss,
            Lr = progress.LearningRate,
            TokensPerS = progress.TokensPerSecond,
            Time = DateTimeOffset.UtcNow,
        }, Json));
        _writer.Flush();
    }

    /// <inheritdoc />
    public void Dispose() => _writer.Dispose();
}
