using ScottPlot;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Analysis;

/// <summary>
/// PNG figures of a <see cref="RoutingReport"/>, drawn with ScottPlot through <see cref="TrainingPlots"/>' helpers:
/// the layer × expert load heatmap, the dropped share by position bucket, the specialization per layer next to its
/// shuffled baseline, and the early-to-final agreement next to chance.
/// </summary>
public static class RoutingPlots
{
    /// <summary>The layer × expert share of assignments as a heatmap (<see cref="TrainingPlots.SaveExpertLoadHeatmap"/>).</summary>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="report">The report.</param>
    public static void SaveLoadHeatmap(string path, RoutingReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var load = new double[report.Layers.Count, report.NumExperts];
        for (int m = 0; m < report.Layers.Count; m++)
            for (int e = 0; e < report.NumExperts; e++) load[m, e] = report.Layers[m].Load[e];
        using Plot plot = TrainingPlots.CreateExpertLoadHeatmap(load);
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, report.Layers.Count).Select(m => (double)m).ToArray(), report.Layers.Select(l => l.Layer.ToString()).ToArray());
        plot.Title("Expert load (share of each layer's assignments)");
        TrainingPlots.Save(plot, path, TrainingPlots.DefaultWidth, TrainingPlots.DefaultHeight);
    }

    /// <summary>The share of assignments dropped by capacity per position bucket, one line per MoE layer (x: the bucket's first position).</summary>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="report">The report.</param>
    public static void SaveDroppedByPosition(string path, RoutingReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        using var plot = new Plot();
        foreach (var layer in report.Layers)
            AddLine(plot, layer.DroppedByPosition.Select(b => (double)b.Start).ToArray(), layer.DroppedByPosition.Select(b => b.DroppedShare).ToArray(), $"layer {layer.Layer}");
        plot.Title(report.CapacityFactor is { } cf ? $"Assignments dropped by position (capacity factor {cf})" : "Assignments dropped by position (no capacity)");
        plot.XLabel("position in the sequence (bucket start)");
        plot.YLabel("share dropped");
        plot.ShowLegend(Alignment.UpperLeft);
        TrainingPlots.Save(plot, path, TrainingPlots.DefaultWidth, TrainingPlots.DefaultHeight);
    }

    /// <summary>The context-independent specialization per MoE layer next to its shuffled (chance) baseline.</summary>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="report">The report.</param>
    public static void SaveSpecialization(string path, RoutingReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        SavePerLayer(path, report, "Context-independent specialization (top-1)", "share of a token's occurrences on its expert",
            ("routing", l => l.Specialization), ("shuffled baseline", l => l.ShuffledSpecialization));
    }

    /// <summary>The early-to-final top-1 agreement per MoE layer next to chance; the report must have an early checkpoint.</summary>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="report">The report.</param>
    /// <exception cref="ArgumentException">The report has no early checkpoint.</exception>
    public static void SaveEarlyAgreement(string path, RoutingReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        if (report.Layers.Any(l => l.EarlyAgreement is null)) throw new ArgumentException("The report has no early checkpoint.", nameof(report));
        SavePerLayer(path, report, "Early routing learning: top-1 agreement with the early checkpoint", "share of tokens",
            ("agreement", l => l.EarlyAgreement!.Value), ("chance", l => l.ChanceAgreement!.Value));
    }

    private static void SavePerLayer(string path, RoutingReport report, string title, string yLabel, params (string Label, Func<LayerRoutingReport, double> Value)[] series)
    {
        using var plot = new Plot();
        double[] layers = report.Layers.Select(l => (double)l.Layer).ToArray();
        foreach (var (label, value) in series) AddLine(plot, layers, report.Layers.Select(value).ToArray(), label);
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(layers, report.Layers.Select(l => l.Layer.ToString()).ToArray());
        plot.Axes.SetLimitsY(0, 1.05);
        plot.Title(title);
        plot.XLabel("layer");
        plot.YLabel(yLabel);
        plot.ShowLegend(Alignment.LowerRight);
        TrainingPlots.Save(plot, path, TrainingPlots.DefaultWidth, TrainingPlots.DefaultHeight);
    }

    private static void AddLine(Plot plot, double[] xs, double[] ys, string label)
    {
        var scatter = plot.Add.Scatter(xs, ys);
        scatter.LegendText = label;
        scatter.LineWidth = 2;
        scatter.MarkerSize = 7;
    }
}
