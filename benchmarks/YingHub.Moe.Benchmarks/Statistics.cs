namespace YingHub.Moe.Benchmarks;

/// <summary>Summaries of repeated timings shared by the benchmark modes.</summary>
internal static class Statistics
{
    /// <summary>The middle value, or the mean of the two middle values of an even count.</summary>
    /// <exception cref="ArgumentException">No values.</exception>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) throw new ArgumentException("The median of no values is undefined.", nameof(values));
        int n = sorted.Length;
        return n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    }
}
