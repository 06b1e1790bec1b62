using System.Globalization;
using ScottPlot;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// PNG plots of a run, drawn with ScottPlot 5 (SkiaSharp, headless: no display or GPU needed; on Linux the native
/// library comes from <c>SkiaSharp.NativeAssets.Linux.NoDependencies</c>): loss curves, the learning-rate curve and
/// an expert-load heatmap. Non-finite values are left out of the curves. Each method writes <c>path</c>
/// (creating its directory) at <c>width × height</c> pixels, each between 100 and 10,000.
/// </summary>
public static class TrainingPlots
{
    /// <summary>Default image width in pixels.</summary>
    public const int DefaultWidth = 800;

    /// <summary>Default image height in pixels.</summary>
    public const int DefaultHeight = 500;

    /// <summary>Plots the training and validation loss against the step (<c>loss</c> vs <c>step</c>, with a legend).</summary>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="train">The <c>train/loss</c> points.</param>
    /// <param name="validation">The <c>val/loss</c> points (may be empty).</param>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="height">Image height in pixels.</param>
    public static void SaveLossCurves(string path, IReadOnlyList<MetricPoint> train, IReadOnlyList<MetricPoint> validation,
        int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(validation);
        using var plot = new Plot();
        AddLine(plot, train, "train", markers: false);
        AddLine(plot, validation, "validation", markers: true);
        plot.Title("Loss");
        plot.XLabel("step");
        plot.YLabel("loss");
        plot.ShowLegend(Alignment.UpperRight);
        Save(plot, path, width, height);
    }

    /// <summary>Plots the learning rate against the step.</summary>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="learningRate">The <c>lr</c> points.</param>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="height">Image height in pixels.</param>
    public static void SaveLearningRate(string path, IReadOnlyList<MetricPoint> learningRate, int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(learningRate);
        using var plot = new Plot();
        AddLine(plot, learningRate, "lr", markers: false);
        plot.Title("Learning rate");
        plot.XLabel("step");
        plot.YLabel("learning rate");
        Save(plot, path, width, height);
    }

    /// <summary>Plots the share of routed assignments dropped by expert capacity against the step, one line per series (e.g. <c>dropped/0</c>, <c>dropped/mean</c>).</summary>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="series">The points of each series, by metric name (the legend label).</param>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="height">Image height in pixels.</param>
    public static void SaveDropped(string path, IReadOnlyDictionary<string, List<MetricPoint>> series, int width = DefaultWidth, int height = DefaultHeight) =>
        SaveCurves(path, "Assignments dropped by expert capacity", "share dropped", series.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<MetricPoint>)kv.Value), width, height);

    /// <summary>Plots any metrics against the step, one line per series, with a legend.</summary>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="title">The plot's title.</param>
    /// <param name="yLabel">The y axis's label.</param>
    /// <param name="series">The points of each series, by label.</param>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="height">Image height in pixels.</param>
    public static void SaveCurves(string path, string title, string yLabel, IReadOnlyDictionary<string, IReadOnlyList<MetricPoint>> series,
        int width = DefaultWidth, int height = DefaultHeight)
    {
        ArgumentNullException.ThrowIfNull(series);
        ArgumentNullException.ThrowIfNull(title);
        ArgumentNullException.ThrowIfNull(yLabel);
        using var plot = new Plot();
        foreach (var (name, points) in series) AddLine(plot, points, name, markers: false);
        plot.Title(title);
        plot.XLabel("step");
        plot.YLabel(yLabel);
        plot.ShowLegend(Alignment.UpperRight);
        Save(plot, path, width, height);
    }

    /// <summary>
    /// Draws <paramref name="load"/> (<c>[layer, expert]</c> load fractions) as a heatmap with a colour bar: experts
    /// along x (label "expert"), layers along y (label "layer", layer 0 at the bottom), each cell annotated with its
    /// value (two decimals). Missing cells may be NaN (drawn blank).
    /// </summary>
    /// <param name="path">The PNG file to write.</param>
    /// <param name="load">Load fractions, shape (layers, experts), at least 1×1.</param>
    /// <param name="width">Image width in pixels.</param>
    /// <param name="height">Image height in pixels.</param>
    public static void SaveExpertLoadHeatmap(string path, double[,] load, int width = DefaultWidth, int height = DefaultHeight)
    {
        using Plot plot = CreateExpertLoadHeatmap(load);
        Save(plot, path, width, height);
    }

    /// <summary>The heatmap plot of <see cref="SaveExpertLoadHeatmap"/> (cell (layer, expert) centred at x = expert, y = layer); the caller disposes it.</summary>
    internal static Plot CreateExpertLoadHeatmap(double[,] load)
    {
        ArgumentNullException.ThrowIfNull(load);
        int layers = load.GetLength(0), experts = load.GetLength(1);
        if (layers == 0 || experts == 0)
            throw new ArgumentException($"load has shape ({layers}, {experts}); allowed: at least one layer and one expert.", nameof(load));

        var plot = new Plot();
        var heatmap = plot.Add.Heatmap(load);
        heatmap.FlipVertically = true; // row r (layer r) is drawn at y = r
        heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
        plot.Add.ColorBar(heatmap);
        double max = 0;
        foreach (double v in load) if (double.IsFinite(v)) max = Math.Max(max, v);
        float fontSize = Math.Clamp(160f / Math.Max(layers, experts), 7f, 16f);
        for (int layer = 0; layer < layers; layer++)
        {
            for (int expert = 0; expert < experts; expert++)
            {
                double v = load[layer, expert];
                if (!double.IsFinite(v)) continue;
                var text = plot.Add.Text(v.ToString("F2", CultureInfo.InvariantCulture), expert, layer);
                text.Alignment = Alignment.MiddleCenter;
                text.LabelFontSize = fontSize;
                text.LabelFontColor = v > 0.6 * max ? Colors.Black : Colors.White; // Viridis is dark at the low end
            }
        }

        plot.Axes.Bottom.TickGenerator = IntegerTicks(experts);
        plot.Axes.Left.TickGenerator = IntegerTicks(layers);
        plot.Title("Expert load (fraction of each layer's tokens)");
        plot.XLabel("expert");
        plot.YLabel("layer");
        return plot;
    }

    private static ScottPlot.TickGenerators.NumericManual IntegerTicks(int count)
    {
        int stride = Math.Max(1, (int)Math.Ceiling(count / 16.0));
        var positions = Enumerable.Range(0, count).Where(i => i % stride == 0).ToArray();
        return new ScottPlot.TickGenerators.NumericManual(
            positions.Select(i => (double)i).ToArray(),
            positions.Select(i => i.ToString(CultureInfo.InvariantCulture)).ToArray());
    }

    private static void AddLine(Plot plot, IReadOnlyList<MetricPoint> points, string label, bool markers)
    {
        var finite = points.Where(p => double.IsFinite(p.Value)).ToArray();
        if (finite.Length == 0) return;
        var scatter = plot.Add.Scatter(finite.Select(p => (double)p.Step).ToArray(), finite.Select(p => p.Value).ToArray());
        scatter.LegendText = label;
        scatter.LineWidth = 2;
        scatter.MarkerSize = markers ? 5 : 0;
    }

    /// <summary>Writes <paramref name="plot"/> to <paramref name="path"/> as a PNG (creating its directory), checking the size.</summary>
    internal static void Save(Plot plot, string path, int width, int height)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (width is < 100 or > 10_000) throw new ArgumentException($"width = {width} is invalid; allowed: 100 to 10000 pixels.", nameof(width));
        if (height is < 100 or > 10_000) throw new ArgumentException($"height = {height} is invalid; allowed: 100 to 10000 pixels.", nameof(height));
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        plot.SavePng(full, width, height);
    }
}
