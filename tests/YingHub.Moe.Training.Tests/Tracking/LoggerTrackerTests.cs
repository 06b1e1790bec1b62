using Microsoft.Extensions.Logging;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests.Tracking;

public class LoggerTrackerTests
{
    [Fact]
    public void One_line_per_metrics_call_with_expert_loads_summarised()
    {
        var logger = new RecordingLogger();
        using var tracker = new LoggerTracker(logger);
        var metrics = new Dictionary<string, double> { [MetricNames.TrainLoss] = 2.5, [MetricNames.LearningRate] = 3e-4 };
        for (int l = 0; l < 10; l++)
            for (int e = 0; e < 10; e++)
                metrics[MetricNames.ExpertLoad(l, e)] = l == 4 && e == 7 ? 0.5 : 0.05;

        tracker.LogMetrics(100, metrics);

        var (level, message, _) = Assert.Single(logger.Lines);
        Assert.Equal(LogLevel.Information, level);
        Assert.StartsWith("step 100: ", message);
        Assert.Contains("train/loss=2.5", message);
        Assert.Contains("lr=0.0003", message);
        Assert.Contains("expert_load[10x10 min=0.050 max=0.500 (l4/e7)]", message);
        Assert.DoesNotContain("expert_load/", message);
        Assert.True(message.Length < 200, message);
    }

    [Fact]
    public void Parameters_tags_artifacts_and_status_are_logged_and_bad_input_is_refused()
    {
        var logger = new RecordingLogger();
        using var tracker = new LoggerTracker(logger);
        tracker.LogParameters(new Dictionary<string, string> { ["preset"] = "tiny" });
        tracker.SetTags(new Dictionary<string, string> { ["git"] = "abc" });
        tracker.Complete(TrainingRunStatus.Killed);
        Assert.Equal(["parameters: preset=tiny", "tags: git=abc", "run ended: Killed"], logger.Lines.Select(l => l.Message));
        Assert.Equal("step", Assert.Throws<ArgumentException>(() => tracker.LogMetrics(-1, new Dictionary<string, double>())).ParamName);
        Assert.Equal("path", Assert.Throws<ArgumentException>(() => tracker.LogArtifact("/nonexistent/file.png")).ParamName);
    }
}
