using System.Globalization;
using System.Text.Json;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests.Tracking;

public class JsonlTrackerTests
{
    [Fact]
    public void Metrics_params_tags_and_status_are_json_lines_flushed_as_written()
    {
        string dir = Directory.CreateTempSubdirectory("yinghub-jsonl-").FullName;
        try
        {
            string path = Path.Combine(dir, "run", "metrics.jsonl");
            DateTime before = DateTime.UtcNow;
            using (var tracker = new JsonlTracker(path))
            {
                tracker.LogParameters(new Dictionary<string, string> { ["preset"] = "tiny", ["lr"] = "0.001" });
                tracker.LogMetrics(10, new Dictionary<string, double>
                {
                    [MetricNames.TrainLoss] = 2.5, [MetricNames.ExpertLoad(1, 2)] = 0.25, [MetricNames.Mfu] = double.NaN,
                });
                Assert.Equal(2, ReadShared(path).Length); // flushed while still open
                tracker.SetTags(new Dictionary<string, string> { ["git"] = "abc" });
                tracker.LogArtifact(path);
                tracker.Complete(TrainingRunStatus.Finished);
            }

            string[] lines = File.ReadAllLines(path);
            Assert.Equal(5, lines.Length);
            using var p = JsonDocument.Parse(lines[0]);
            Assert.Equal("params", p.RootElement.GetProperty("type").GetString());
            Assert.Equal("tiny", p.RootElement.GetProperty("params").GetProperty("preset").GetString());

            using var m = JsonDocument.Parse(lines[1]);
            Assert.False(m.RootElement.TryGetProperty("type", out _));
            Assert.Equal(10, m.RootElement.GetProperty("step").GetInt64());
            Assert.Equal(2.5, m.RootElement.GetProperty("train/loss").GetDouble());
            Assert.Equal(0.25, m.RootElement.GetProperty("expert_load/1/2").GetDouble());
            Assert.Equal("NaN", m.RootElement.GetProperty("mfu").GetString());
            string time = m.RootElement.GetProperty("time").GetString()!;
            Assert.EndsWith("Z", time);
            DateTime parsed = DateTime.Parse(time, CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal);
            Assert.InRange(parsed, before.AddSeconds(-1), DateTime.UtcNow.AddSeconds(1));

            Assert.Equal(["params", "metrics", "tags", "artifact", "status"],
                lines.Select(l => JsonDocument.Parse(l).RootElement.TryGetProperty("type", out var t) ? t.GetString() : "metrics"));
            Assert.Contains("\"status\":\"Finished\"", lines[4]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string[] ReadShared(string path)
    {
        using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
        return reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }
}
