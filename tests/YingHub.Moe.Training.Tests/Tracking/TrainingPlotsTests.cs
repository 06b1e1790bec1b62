using SkiaSharp;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests.Tracking;

public class TrainingPlotsTests : IDisposable
{
    private static readonly byte[] PngSignature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-plots-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Loss_and_learning_rate_curves_are_pngs_of_the_requested_size()
    {
        var train = Enumerable.Range(0, 50).Select(i => new MetricPoint(i * 10, 4.0 / (1 + i * 0.1))).ToList();
        var val = new List<MetricPoint> { new(100, 2.5), new(200, double.NaN), new(400, 1.9) };
        string loss = Path.Combine(_dir, "sub", "loss.png");
        string lr = Path.Combine(_dir, "lr.png");
        TrainingPlots.SaveLossCurves(loss, train, val, 640, 400);
        TrainingPlots.SaveLearningRate(lr, train.Select(p => p with { Value = 1e-3 * p.Value }).ToList(), 300, 200);

        using var lossImage = Decode(loss);
        Assert.Equal((640, 400), (lossImage.Width, lossImage.Height));
        Assert.True(DistinctColours(lossImage) > 10);
        using var lrImage = Decode(lr);
        Assert.Equal((300, 200), (lrImage.Width, lrImage.Height));
    }

    [Fact]
    public void The_expert_load_heatmap_colours_each_cell_by_its_load_with_layer_0_at_the_bottom()
    {
        double[,] load = { { 0.1, 0.2, 0.7 }, { 0.3, 0.3, 0.4 } }; // 2 layers x 3 experts
        string path = Path.Combine(_dir, "expert_load.png");
        TrainingPlots.SaveExpertLoadHeatmap(path, load, 600, 400);

        using var image = Decode(path);
        Assert.Equal((600, 400), (image.Width, image.Height));
        Assert.True(DistinctColours(image) > 20, "the heatmap looks blank");

        // Find each cell's pixels from the plot's own axes (rendered at the same size), a little off centre to miss the label.
        using var plot = TrainingPlots.CreateExpertLoadHeatmap(load);
        plot.SavePng(Path.Combine(_dir, "again.png"), 600, 400);
        SKColor Cell(int layer, int expert)
        {
            var px = plot.GetPixel(new ScottPlot.Coordinates(expert + 0.35, layer + 0.35));
            return image.GetPixel((int)px.X, (int)px.Y);
        }

        SKColor low = Cell(0, 0), high = Cell(0, 2), mid1 = Cell(1, 0), mid2 = Cell(1, 1);
        Assert.True(high.Red > 180 && high.Green > 180 && high.Blue < 120, $"0.7 (the maximum) should be Viridis yellow, got {high}");
        Assert.True(low.Red < 100 && low.Green < 60 && low.Blue > 60, $"0.1 (the minimum) should be Viridis dark purple, got {low}");
        Assert.Equal(mid1, mid2); // equal loads, equal colours
        Assert.NotEqual(mid1, Cell(1, 2));
        Assert.Equal("load", Assert.Throws<ArgumentException>(() => TrainingPlots.SaveExpertLoadHeatmap(path, new double[0, 3])).ParamName);
        Assert.Equal("width", Assert.Throws<ArgumentException>(() => TrainingPlots.SaveExpertLoadHeatmap(path, load, 50, 400)).ParamName);
    }

    [Fact]
    public void Plot_tracker_redraws_every_interval_and_reports_artifacts()
    {
        var sink = new RecordingTracker();
        var tracker = new PlotTracker(Path.Combine(_dir, "plots"), interval: 2, artifacts: sink, width: 320, height: 240);
        var metrics = new Dictionary<string, double> { [MetricNames.TrainLoss] = 3.0, [MetricNames.LearningRate] = 1e-3 };
        tracker.LogMetrics(1, metrics);
        Assert.Empty(Directory.GetFiles(tracker.Directory));

        for (int l = 0; l < 2; l++)
            for (int e = 0; e < 3; e++)
                metrics[MetricNames.ExpertLoad(l, e)] = (l * 3 + e + 1) / 21.0;
        tracker.LogMetrics(2, metrics);
        string[] names = [PlotTracker.LossFileName, PlotTracker.LearningRateFileName, PlotTracker.ExpertLoadFileName];
        Assert.Equal(names.Select(n => Path.Combine(tracker.Directory, n)), sink.Artifacts);

        tracker.LogMetrics(3, new Dictionary<string, double> { [MetricNames.ValidationLoss] = 2.9 });
        Assert.Equal(3, sink.Artifacts.Count);
        tracker.Complete(TrainingRunStatus.Finished);
        Assert.Equal(6, sink.Artifacts.Count);
        Assert.DoesNotContain("Complete", sink.Calls); // the artifact sink is not owned

        double[,] matrix = tracker.LoadMatrix();
        Assert.Equal((2, 3), (matrix.GetLength(0), matrix.GetLength(1)));
        Assert.Equal(6 / 21.0, matrix[1, 2]);
        foreach (string n in names)
        {
            byte[] head = File.ReadAllBytes(Path.Combine(tracker.Directory, n))[..8];
            Assert.Equal(PngSignature, head);
            using var image = Decode(Path.Combine(tracker.Directory, n));
            Assert.Equal((320, 240), (image.Width, image.Height));
        }

        Assert.Equal("interval", Assert.Throws<ArgumentException>(() => new PlotTracker(_dir, interval: 0)).ParamName);
    }

    [Fact]
    public void Plot_tracker_draws_the_capacity_drops_per_layer_and_their_mean()
    {
        var sink = new RecordingTracker();
        var tracker = new PlotTracker(Path.Combine(_dir, "drops"), interval: 1, artifacts: sink, width: 320, height: 240);
        tracker.LogMetrics(1, new Dictionary<string, double> { [MetricNames.DroppedShare(0)] = 0.25, [MetricNames.DroppedShare(1)] = 0.05, [MetricNames.DroppedMean] = 0.15 });
        string path = Path.Combine(tracker.Directory, PlotTracker.DroppedFileName);
        Assert.Equal([path], sink.Artifacts);
        using var image = Decode(path);
        Assert.Equal((320, 240), (image.Width, image.Height));
        Assert.Equal("dropped/3", MetricNames.DroppedShare(3));
        Assert.Equal("layer", Assert.Throws<ArgumentException>(() => MetricNames.DroppedShare(-1)).ParamName);
    }

    [Fact]
    public void Plot_tracker_draws_curve_plots_of_chosen_metrics_only_once_they_have_points()
    {
        var sink = new RecordingTracker();
        var curves = new[] { new CurvePlot("reward.png", "Reward", "reward", ["env/reward_mean"]), new CurvePlot("kl.png", "KL", "nats", ["objective/kl", "objective/kl_coef"]) };
        var tracker = new PlotTracker(Path.Combine(_dir, "rl"), interval: 1, artifacts: sink, width: 320, height: 240, curves: curves);
        tracker.LogMetrics(1, new Dictionary<string, double> { ["env/reward_mean"] = 0.2, ["unplotted"] = 1 });
        string reward = Path.Combine(tracker.Directory, "reward.png");
        Assert.Equal([reward], sink.Artifacts); // kl.png has no point yet
        tracker.LogMetrics(2, new Dictionary<string, double> { ["env/reward_mean"] = 0.3, ["objective/kl"] = 0.5 });
        Assert.Equal([reward, reward, Path.Combine(tracker.Directory, "kl.png")], sink.Artifacts);
        using var image = Decode(Path.Combine(tracker.Directory, "kl.png"));
        Assert.Equal((320, 240), (image.Width, image.Height));

        Assert.Equal("curves", Assert.Throws<ArgumentException>(() => new PlotTracker(_dir, curves: [new CurvePlot("loss.png", "x", "y", ["m"])])).ParamName);
        Assert.Contains("FileName", Assert.Throws<ArgumentException>(() => new PlotTracker(_dir, curves: [new CurvePlot("../x.png", "x", "y", ["m"])])).Message);
        Assert.Contains("Metrics", Assert.Throws<ArgumentException>(() => new PlotTracker(_dir, curves: [new CurvePlot("x.png", "x", "y", [])])).Message);
    }

    private static SKBitmap Decode(string path)
    {
        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal(PngSignature, bytes[..8]);
        return SKBitmap.Decode(bytes) ?? throw new InvalidDataException($"{path} is not a decodable image");
    }

    private static int DistinctColours(SKBitmap image)
    {
        var colours = new HashSet<uint>();
        for (int y = 0; y < image.Height; y += 3)
            for (int x = 0; x < image.Width; x += 3)
                colours.Add((uint)image.GetPixel(x, y));
        return colours.Count;
    }
}
