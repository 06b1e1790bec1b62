using System.Globalization;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// The <c>--name value</c> flags of the non-BenchmarkDotNet modes (<c>throughput</c>, <c>quality</c>, <c>decode</c>), and the corpus
/// they read: <c>--data FILE</c>, else <c>$YINGHUB_DATA_DIR/tinyshakespeare.txt</c>, else <c>shared/data</c> in this
/// directory or a parent (the repository's <c>../shared</c>).
/// </summary>
internal sealed class BenchmarkArguments(string[] args)
{
    /// <summary>The value after <paramref name="name"/>, or <paramref name="fallback"/> when the flag is absent.</summary>
    public string Get(string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    /// <summary>Whether the value-less flag <paramref name="name"/> is given.</summary>
    public bool Has(string name) => args.Contains(name);

    /// <exception cref="ArgumentException">The value is not an integer.</exception>
    public int Int(string name, int fallback) =>
        int.TryParse(Get(name, fallback.ToString(CultureInfo.InvariantCulture)), NumberStyles.Integer, CultureInfo.InvariantCulture, out int value)
            ? value
            : throw new ArgumentException($"{name} {Get(name, "")}: an integer is expected.", name);

    /// <exception cref="ArgumentException">The value is not a number.</exception>
    public double Double(string name, double fallback) =>
        double.TryParse(Get(name, fallback.ToString("R", CultureInfo.InvariantCulture)), NumberStyles.Float, CultureInfo.InvariantCulture, out double value)
            ? value
            : throw new ArgumentException($"{name} {Get(name, "")}: a number is expected.", name);

    /// <summary>The corpus file (see the class summary).</summary>
    /// <exception cref="FileNotFoundException">None of the places holds it.</exception>
    public string Corpus()
    {
        if (Get("--data", "") is { Length: > 0 } data) return data;
        if (Environment.GetEnvironmentVariable("YINGHUB_DATA_DIR") is { Length: > 0 } dir) return Path.Combine(dir, "tinyshakespeare.txt");
        for (var d = new DirectoryInfo(Environment.CurrentDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "shared", "data", "tinyshakespeare.txt");
            if (File.Exists(candidate)) return candidate;
        }

        throw new FileNotFoundException("tinyshakespeare.txt not found: pass --data FILE or set YINGHUB_DATA_DIR.");
    }
}
