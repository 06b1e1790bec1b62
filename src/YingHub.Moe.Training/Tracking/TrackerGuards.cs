using System.Globalization;

namespace YingHub.Moe.Training.Tracking;

/// <summary>Argument checks shared by the tracking sinks (messages name the parameter and the value).</summary>
internal static class TrackerGuards
{
    public static void Step(long step)
    {
        if (step < 0) throw new ArgumentException($"step = {step.ToString(CultureInfo.InvariantCulture)} is invalid; allowed: >= 0.", nameof(step));
    }

    public static void Metrics(long step, IReadOnlyDictionary<string, double> metrics)
    {
        Step(step);
        ArgumentNullException.ThrowIfNull(metrics);
        foreach (string key in metrics.Keys)
        {
            if (string.IsNullOrWhiteSpace(key)) throw new ArgumentException("A metric name is empty or white space.", nameof(metrics));
        }
    }

    public static void Strings(IReadOnlyDictionary<string, string> values, string paramName)
    {
        ArgumentNullException.ThrowIfNull(values, paramName);
        foreach (var (key, value) in values)
        {
            if (string.IsNullOrWhiteSpace(key)) throw new ArgumentException("A name is empty or white space.", paramName);
            if (value is null) throw new ArgumentException($"The value of '{key}' is null.", paramName);
        }
    }

    public static string ExistingFile(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new ArgumentException($"path = '{path}' is not an existing file.", nameof(path));
        return full;
    }
}
