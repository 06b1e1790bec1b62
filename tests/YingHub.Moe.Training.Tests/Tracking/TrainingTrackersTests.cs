using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests.Tracking;

public class TrainingTrackersTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-trackers-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Every_sink_is_built_and_plots_reach_mlflow_before_the_run_ends()
    {
        using var stub = new MlflowStub();
        var options = new TrackingOptions
        {
            RunDirectory = _dir, Jsonl = true, TensorBoard = true, MlflowTrackingUri = stub.Uri,
            MlflowExperimentName = "factory", RunName = "r1", PlotInterval = 1000,
        };
        var logger = new RecordingLogger();
        using (var tracker = TrainingTrackers.Create(options, logger))
        {
            Assert.Equal(
                [typeof(JsonlTracker), typeof(TensorBoardTracker), typeof(LoggerTracker), typeof(PlotTracker), typeof(MlflowTracker)],
                tracker.Sinks.Select(s => s.GetType()));
            tracker.LogParameters(new Dictionary<string, string> { ["preset"] = "tiny" });
            tracker.LogMetrics(10, new Dictionary<string, double>
            {
                [MetricNames.TrainLoss] = 3.0, [MetricNames.LearningRate] = 1e-3, [MetricNames.ExpertLoad(0, 0)] = 1.0,
            });
            tracker.Complete(TrainingRunStatus.Finished);
            Assert.Empty(tracker.Failures);
        }

        Assert.True(File.Exists(Path.Combine(_dir, TrainingTrackers.JsonlFileName)));
        Assert.Single(Directory.GetFiles(Path.Combine(_dir, TrainingTrackers.TensorBoardDirectoryName), "events.out.tfevents.*"));
        Assert.Equal(3, Directory.GetFiles(Path.Combine(_dir, TrainingTrackers.PlotsDirectoryName), "*.png").Length);
        Assert.Contains(logger.Lines, l => l.Message.StartsWith("step 10: ", StringComparison.Ordinal));

        var requests = stub.Requests.ToList();
        Assert.Equal("factory", Assert.Single(stub.Where("experiments/create")).Json.GetProperty("name").GetString());
        Assert.Equal("r1", Assert.Single(stub.Where("runs/create")).Json.GetProperty("run_name").GetString());
        var uploads = requests.Where(r => r.Method == "PUT").Select(r => Path.GetFileName(r.Path)).Order().ToArray();
        Assert.Equal(["expert_load.png", "loss.png", "lr.png"], uploads);
        Assert.EndsWith("runs/update", requests[^1].Path);
    }

    [Fact]
    public void Without_mlflow_or_plots_only_the_asked_sinks_exist()
    {
        using var tracker = TrainingTrackers.Create(new TrackingOptions { RunDirectory = _dir, PlotInterval = 0 });
        Assert.IsType<JsonlTracker>(Assert.Single(tracker.Sinks));
    }

    [Theory]
    [InlineData(nameof(TrackingOptions.RunDirectory))]
    [InlineData(nameof(TrackingOptions.PlotInterval))]
    [InlineData(nameof(TrackingOptions.MlflowTrackingUri))]
    [InlineData(nameof(TrackingOptions.MlflowExperimentName))]
    public void Invalid_options_name_the_field_value_and_allowed_range(string field)
    {
        var options = new TrackingOptions { RunDirectory = _dir };
        switch (field)
        {
            case nameof(TrackingOptions.RunDirectory): options.RunDirectory = ""; break;
            case nameof(TrackingOptions.PlotInterval): options.PlotInterval = -1; break;
            case nameof(TrackingOptions.MlflowTrackingUri): options.MlflowTrackingUri = "127.0.0.1:5000"; break;
            case nameof(TrackingOptions.MlflowExperimentName): options.MlflowExperimentName = " "; break;
        }

        var e = Assert.Throws<ArgumentException>(() => TrainingTrackers.Create(options));
        Assert.Equal(field, e.ParamName);
        Assert.Contains($"{field} = ", e.Message);
        Assert.Contains("allowed:", e.Message);
    }

    [Fact]
    public void An_unreachable_mlflow_server_fails_creation_and_closes_the_other_sinks()
    {
        string uri;
        using (var stub = new MlflowStub()) uri = stub.Uri; // a port nothing listens on any more
        var e = Assert.Throws<InvalidOperationException>(() =>
            TrainingTrackers.Create(new TrackingOptions { RunDirectory = _dir, MlflowTrackingUri = uri }));
        Assert.Contains("experiments/get-by-name", e.Message);
        using var reopened = new FileStream(Path.Combine(_dir, TrainingTrackers.JsonlFileName), FileMode.Open, FileAccess.ReadWrite, FileShare.None);
    }
}
