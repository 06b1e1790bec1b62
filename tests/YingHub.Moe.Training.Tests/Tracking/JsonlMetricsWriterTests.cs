using System.Text.Json;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests.Tracking;

public class JsonlMetricsWriterTests
{
    [Fact]
    public void Each_progress_point_is_one_json_line_appended_and_flushed()
    {
        string dir = Directory.CreateTempSubdirectory("yinghub-metrics-").FullName;
        try
        {
            string path = Path.Combine(dir, "run", "metrics.jsonl");
            using (var writer = new JsonlMetricsWriter(path))
            {
                writer.Write(new TrainingProgress(10, 2.5, null, 1e-3, 1234.5));
                using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
                Assert.Single(reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries)); // flushed while still open
            }

            using (var writer = new JsonlMetricsWriter(path)) writer.Write(new TrainingProgress(20, 2.0, 2.1, 5e-4, 1300));
            string[] lines = File.ReadAllLines(path);
            Assert.Equal(2, lines.Length);
            using var first = JsonDocument.Parse(lines[0]);
            Assert.Equal(10, first.RootElement.GetProperty("step").GetInt64());
            Assert.Equal(JsonValueKind.Null, first.RootElement.GetProperty("val_loss").ValueKind);
            using var second = JsonDocument.Parse(lines[1]);
            Assert.Equal(2.1, second.RootElement.GetProperty("val_loss").GetDouble());
            Assert.Equal(5e-4, second.RootElement.GetProperty("lr").GetDouble());
            Assert.Equal(1300, second.RootElement.GetProperty("tokens_per_s").GetDouble());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
