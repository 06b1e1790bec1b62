using System.Globalization;
using System.Text;
using TorchSharp.Modules;
using static TorchSharp.torch.utils;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// Writes TensorBoard event files through TorchSharp's <c>torch.utils.tensorboard.SummaryWriter</c>
/// (<c>tensorboard --logdir {LogDirectory}</c> shows them): every metric is a scalar under its name (the
/// <c>/</c> in <see cref="MetricNames"/> groups the charts), parameters and tags are text summaries
/// (<c>parameters</c>, <c>tags</c>, as Markdown tables), artifacts are listed under the text tag <c>artifacts</c> and the
/// final status under <c>status</c>. TorchSharp 0.107's writer appends each event to the file at once (it opens and
/// closes the file per event), so nothing is buffered; its steps are 32-bit and its values single precision, and steps
/// above <see cref="int.MaxValue"/> are refused.
/// </summary>
public sealed class TensorBoardTracker : ITrainingTracker
{
    private readonly SummaryWriter _writer;
    private long _lastStep;

    /// <summary>A tracker writing a new event file in <paramref name="logDirectory"/> (created if needed).</summary>
    /// <param name="logDirectory">The run's TensorBoard directory.</param>
    public TensorBoardTracker(string logDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(logDirectory);
        LogDirectory = Path.GetFullPath(logDirectory);
        Directory.CreateDirectory(LogDirectory);
        _writer = tensorboard.SummaryWriter(LogDirectory);
    }

    /// <summary>The directory holding the event file.</summary>
    public string LogDirectory { get; }

    /// <inheritdoc />
    public void LogParameters(IReadOnlyDictionary<string, string> parameters)
    {
        TrackerGuards.Strings(parameters, nameof(parameters));
        _writer.add_text("parameters", MarkdownTable(parameters), 0);
    }

    /// <inheritdoc />
    public void LogMetrics(long step, IReadOnlyDictionary<string, double> metrics)
    {
        TrackerGuards.Metrics(step, metrics);
        if (step > int.MaxValue)
            throw new ArgumentException($"step = {step.ToString(CultureInfo.InvariantCulture)} is invalid; allowed: <= {int.MaxValue} (TensorBoard steps are 32-bit in TorchSharp).", nameof(step));
        foreach (var (name, value) in metrics) _writer.add_scalar(name, (float)value, (int)step);
        _lastStep = step;
    }

    /// <inheritdoc />
    public void SetTags(IReadOnlyDictionary<string, string> tags)
    {
        TrackerGuards.Strings(tags, nameof(tags));
        _writer.add_text("tags", MarkdownTable(tags), (int)_lastStep);
    }

    /// <inheritdoc />
    public void LogArtifact(string path)
    {
        string full = TrackerGuards.ExistingFile(path);
        _writer.add_text("artifacts", full, (int)_lastStep);
    }

    /// <inheritdoc />
    public void Complete(TrainingRunStatus status) => _writer.add_text("status", status.ToString(), (int)_lastStep);

    /// <inheritdoc />
    public void Dispose()
    {
        // TorchSharp's SummaryWriter holds no open handle between events.
    }

    private static string MarkdownTable(IReadOnlyDictionary<string, string> values)
    {
        var text = new StringBuilder("| name | value |\n| --- | --- |\n");
        foreach (var (key, value) in values.OrderBy(p => p.Key, StringComparer.Ordinal))
            text.Append("| ").Append(Escape(key)).Append(" | ").Append(Escape(value)).Append(" |\n");
        return text.ToString();
    }

    private static string Escape(string s) => s.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
}
