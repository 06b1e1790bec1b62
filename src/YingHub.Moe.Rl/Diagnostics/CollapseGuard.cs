using System.Globalization;
using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Rl.Diagnostics;

/// <summary>The state a <see cref="CollapseGuard"/> reports.</summary>
public enum CollapseStatus
{
    /// <summary>No threshold crossed.</summary>
    Healthy,

    /// <summary>A threshold crossed, for fewer consecutive checks than <see cref="CollapseGuardOptions.Patience"/>.</summary>
    Warning,

    /// <summary>A threshold crossed for at least <see cref="CollapseGuardOptions.Patience"/> consecutive checks.</summary>
    Collapsed,
}

/// <summary>One check's outcome.</summary>
/// <param name="Status">Healthy, warning or collapsed.</param>
/// <param name="Reasons">Each crossed threshold, as <c>"IdenticalShare 0.75 &gt; MaxIdenticalShare 0.5"</c>; empty when healthy.</param>
/// <param name="ShouldStop">Collapsed and <see cref="CollapseGuardOptions.StopOnCollapse"/>: the caller should end the run.</param>
public sealed record CollapseVerdict(CollapseStatus Status, IReadOnlyList<string> Reasons, bool ShouldStop);

/// <summary>
/// Watches <see cref="CollapseMetrics"/> once per iteration and says when a run has collapsed: a threshold of
/// <see cref="CollapseGuardOptions"/> crossed for <see cref="CollapseGuardOptions.Patience"/> consecutive checks
/// (a healthy check resets the count). Not thread-safe: one guard per run.
/// </summary>
public sealed class CollapseGuard
{
    private readonly double? _maxIdentical, _minDistinct2, _minDistinct3, _maxRepeated;
    private readonly bool _stop;
    private readonly int _patience;

    /// <summary>A guard with <paramref name="options"/> (read once; null for the defaults).</summary>
    /// <exception cref="ArgumentException">The options are invalid; the message lists every problem.</exception>
    public CollapseGuard(CollapseGuardOptions? options = null)
    {
        options ??= new CollapseGuardOptions();
        options.ThrowIfInvalid(nameof(options));
        (_maxIdentical, _minDistinct2, _minDistinct3, _maxRepeated) =
            (options.MaxIdenticalShare, options.MinDistinct2, options.MinDistinct3, options.MaxRepeatedNgramRate);
        (_stop, _patience) = (options.StopOnCollapse, options.Patience);
    }

    /// <summary>Consecutive flagged checks so far.</summary>
    public int ConsecutiveFlagged { get; private set; }

    /// <summary>Checks one batch's metrics and updates <see cref="ConsecutiveFlagged"/>.</summary>
    public CollapseVerdict Check(CollapseMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var reasons = new List<string>();
        Above(reasons, nameof(CollapseMetrics.IdenticalShare), metrics.IdenticalShare, nameof(CollapseGuardOptions.MaxIdenticalShare), _maxIdentical);
        Below(reasons, nameof(CollapseMetrics.Distinct2), metrics.Distinct2, nameof(CollapseGuardOptions.MinDistinct2), _minDistinct2);
        Below(reasons, nameof(CollapseMetrics.Distinct3), metrics.Distinct3, nameof(CollapseGuardOptions.MinDistinct3), _minDistinct3);
        Above(reasons, nameof(CollapseMetrics.RepeatedNgramRate), metrics.RepeatedNgramRate, nameof(CollapseGuardOptions.MaxRepeatedNgramRate), _maxRepeated);
        ConsecutiveFlagged = reasons.Count == 0 ? 0 : ConsecutiveFlagged + 1;
        CollapseStatus status = ConsecutiveFlagged == 0 ? CollapseStatus.Healthy
            : ConsecutiveFlagged < _patience ? CollapseStatus.Warning : CollapseStatus.Collapsed;
        return new CollapseVerdict(status, reasons, status == CollapseStatus.Collapsed && _stop);
    }

    /// <summary>Forgets the flagged checks so far (e.g. after restoring an earlier checkpoint).</summary>
    public void Reset() => ConsecutiveFlagged = 0;

    // NaN metrics fail neither comparison, so they never flag: a NaN is a bug upstream, not a collapse.
    private static void Above(List<string> reasons, string metric, double value, string threshold, double? max)
    {
        if (max is { } m && value > m) reasons.Add($"{metric} {Format(value)} > {threshold} {Format(m)}");
    }

    private static void Below(List<string> reasons, string metric, double value, string threshold, double? min)
    {
        if (min is { } m && value < m) reasons.Add($"{metric} {Format(value)} < {threshold} {Format(m)}");
    }

    private static string Format(double value) => value.ToString("0.###", CultureInfo.InvariantCulture);
}
