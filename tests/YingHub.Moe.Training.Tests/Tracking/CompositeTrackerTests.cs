using Microsoft.Extensions.Logging;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests.Tracking;

public class CompositeTrackerTests
{
    private static readonly Dictionary<string, double> Loss = new() { [MetricNames.TrainLoss] = 2.0 };

    [Fact]
    public void A_failing_sink_is_logged_once_recorded_and_does_not_stop_the_others()
    {
        var logger = new RecordingLogger();
        var failing = new RecordingTracker(throwIn: nameof(ITrainingTracker.LogMetrics));
        var healthy = new RecordingTracker();
        using (var composite = new CompositeTracker([failing, healthy], logger))
        {
            composite.LogParameters(new Dictionary<string, string> { ["a"] = "1" });
            composite.LogMetrics(1, Loss);
            composite.LogMetrics(2, Loss);
            composite.Complete(TrainingRunStatus.Finished); // does not throw

            Assert.Equal(2, composite.Failures.Count);
            Assert.All(composite.Failures, f => Assert.Equal(("RecordingTracker", "LogMetrics"), (f.Sink, f.Operation)));
            Assert.IsType<IOException>(composite.Failures[0].Exception);
        }

        string[] expected = ["LogParameters", "LogMetrics", "LogMetrics", "Complete", "Dispose"];
        Assert.Equal(expected, failing.Calls);
        Assert.Equal(expected, healthy.Calls);
        Assert.Single(logger.Lines, l => l.Level == LogLevel.Error && l.Exception is IOException);
        Assert.Single(logger.Lines, l => l.Level == LogLevel.Debug);
        var summary = Assert.Single(logger.Lines, l => l.Level == LogLevel.Warning);
        Assert.Contains("2 tracking failures", summary.Message);
        Assert.Contains("sink failed in LogMetrics", summary.Message);
    }

    [Fact]
    public void Bad_arguments_throw_before_any_sink_is_called()
    {
        var sink = new RecordingTracker();
        using var composite = new CompositeTracker([sink]);
        Assert.Equal("step", Assert.Throws<ArgumentException>(() => composite.LogMetrics(-5, Loss)).ParamName);
        Assert.Throws<ArgumentNullException>(() => composite.SetTags(null!));
        Assert.Empty(sink.Calls);
        Assert.Equal("sinks", Assert.Throws<ArgumentException>(() => new CompositeTracker([sink, null!])).ParamName);
    }
}
