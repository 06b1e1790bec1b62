using System.Text.Json;
using Microsoft.Extensions.Logging;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests.Tracking;

public class MlflowTrackerTests
{
    private static MlflowTrackerOptions Options(MlflowStub stub) => new()
    {
        // a hang guard only, far above any request to the local stub, so a loaded machine cannot fail a test
        TrackingUri = stub.Uri, ExperimentName = "moe tests", RunName = "tiny", Token = "secret", RequestTimeout = TimeSpan.FromMinutes(2),
    };

    /// <summary>
    /// A logger that signals its first error. The tracker's sender records a failure before it logs it, so once
    /// <see cref="Failed"/> is set the failure is visible to the next call: no polling against a clock.
    /// </summary>
    private sealed class FailureSignal : ILogger
    {
        public ManualResetEventSlim Failed { get; } = new();

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Error) Failed.Set();
        }
    }

    [Fact]
    public void A_run_is_created_batched_at_mlflow_limits_uploaded_and_ended()
    {
        using var stub = new MlflowStub();
        string dir = Directory.CreateTempSubdirectory("yinghub-mlflow-").FullName;
        try
        {
            string png = Path.Combine(dir, "loss.png");
            byte[] bytes = [0x89, 0x50, 0x4E, 0x47, 1, 2, 3];
            File.WriteAllBytes(png, bytes);

            using (var tracker = new MlflowTracker(Options(stub)))
            {
                Assert.Equal(("7", "run42"), (tracker.ExperimentId, tracker.RunId));
                tracker.LogParameters(Enumerable.Range(0, 150).ToDictionary(i => $"p{i}", i => i.ToString()));
                tracker.LogMetrics(12, Enumerable.Range(0, 2500).ToDictionary(i => $"m{i}", i => i * 0.5));
                tracker.SetTags(new Dictionary<string, string> { ["preset"] = "tiny" });
                tracker.SetTags(Enumerable.Range(0, 150).ToDictionary(i => $"t{i}", i => "v"));
                tracker.LogArtifact(png);
                File.WriteAllBytes(png, [0]); // read at LogArtifact time: a later overwrite changes nothing
                tracker.Complete(TrainingRunStatus.Finished);
            }

            var requests = stub.Requests.ToList();
            Assert.All(requests, r => Assert.Equal("Bearer secret", r.Authorization));
            Assert.Equal("/api/2.0/mlflow/experiments/get-by-name", requests[0].Path);
            Assert.Contains("experiment_name=moe%20tests", requests[0].Query);
            Assert.Equal("moe tests", Assert.Single(stub.Where("experiments/create")).Json.GetProperty("name").GetString());
            var create = Assert.Single(stub.Where("runs/create")).Json;
            Assert.Equal("7", create.GetProperty("experiment_id").GetString());
            Assert.Equal("tiny", create.GetProperty("run_name").GetString());
            Assert.True(create.GetProperty("start_time").GetInt64() > 1_600_000_000_000);

            var batches = stub.Where("runs/log-batch").Select(r => r.Json).ToList();
            Assert.All(batches, b => Assert.Equal("run42", b.GetProperty("run_id").GetString()));
            int[] Sizes(string key) => batches.Where(b => b.TryGetProperty(key, out _)).Select(b => b.GetProperty(key).GetArrayLength()).ToArray();
            Assert.Equal([100, 50], Sizes("params"));
            Assert.Equal([1000, 1000, 500], Sizes("metrics"));
            Assert.Equal([100, 50], Sizes("tags"));
            var metrics = batches.Where(b => b.TryGetProperty("metrics", out _)).SelectMany(b => b.GetProperty("metrics").EnumerateArray()).ToList();
            Assert.Equal(2500, metrics.Select(m => m.GetProperty("key").GetString()).Distinct().Count());
            Assert.All(metrics, m => Assert.Equal(12, m.GetProperty("step").GetInt64()));
            Assert.All(metrics, m => Assert.True(m.GetProperty("timestamp").GetInt64() > 1_600_000_000_000));
            Assert.Equal(1249.5, metrics.Single(m => m.GetProperty("key").GetString() == "m2499").GetProperty("value").GetDouble());

            var tag = Assert.Single(stub.Where("runs/set-tag")).Json;
            Assert.Equal(("preset", "tiny"), (tag.GetProperty("key").GetString(), tag.GetProperty("value").GetString()));

            var upload = Assert.Single(requests, r => r.Method == "PUT");
            Assert.Equal("/api/2.0/mlflow-artifacts/artifacts/7/run42/artifacts/loss.png", upload.Path);
            Assert.Equal(bytes, upload.Body);

            var end = Assert.Single(stub.Where("runs/update"));
            Assert.Same(end, requests[^1]); // sent after everything queued before it
            Assert.Equal("FINISHED", end.Json.GetProperty("status").GetString());
            Assert.True(end.Json.GetProperty("end_time").GetInt64() >= create.GetProperty("start_time").GetInt64());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void An_existing_experiment_is_reused_and_dispose_ends_an_open_run_as_killed()
    {
        using var stub = new MlflowStub { ExistingExperimentId = "3" };
        var options = Options(stub);
        (options.Token, options.Username, options.Password) = (null, "ada", "pw");
        using (var tracker = new MlflowTracker(options)) Assert.Equal("3", tracker.ExperimentId);

        Assert.Empty(stub.Where("experiments/create"));
        Assert.Equal("3", Assert.Single(stub.Where("runs/create")).Json.GetProperty("experiment_id").GetString());
        Assert.Equal("Basic " + Convert.ToBase64String("ada:pw"u8.ToArray()), stub.Requests.First().Authorization);
        Assert.Equal("KILLED", Assert.Single(stub.Where("runs/update")).Json.GetProperty("status").GetString());
    }

    [Fact]
    public void A_server_error_becomes_a_clear_exception_and_the_run_is_still_closed()
    {
        using var stub = new MlflowStub
        {
            Override = r => r.Path.EndsWith("runs/log-batch", StringComparison.Ordinal)
                ? (500, """{"error_code":"INTERNAL_ERROR","message":"database is locked"}""")
                : null,
        };
        using var tracker = new MlflowTracker(Options(stub));
        tracker.LogMetrics(1, new Dictionary<string, double> { [MetricNames.TrainLoss] = 2.5 });
        var e = Assert.Throws<InvalidOperationException>(() => tracker.Complete(TrainingRunStatus.Failed));
        Assert.Contains("POST /api/2.0/mlflow/runs/log-batch", e.Message);
        Assert.Contains("500", e.Message);
        Assert.Contains("INTERNAL_ERROR: database is locked", e.Message);
        Assert.Equal("FAILED", Assert.Single(stub.Where("runs/update")).Json.GetProperty("status").GetString());
    }

    [Fact]
    public void Calls_after_a_failure_throw_and_nothing_more_is_sent()
    {
        using var stub = new MlflowStub
        {
            Override = r => r.Path.EndsWith("runs/set-tag", StringComparison.Ordinal) ? (403, """{"error_code":"PERMISSION_DENIED","message":"no"}""") : null,
        };
        var log = new FailureSignal();
        using var tracker = new MlflowTracker(Options(stub), logger: log);
        tracker.SetTags(new Dictionary<string, string> { ["a"] = "b" });
        // the background sender has recorded the 403; the bound is a liveness guard (a sender that never logs would hang
        // the suite), minutes beyond any loaded machine's delay, not a speed check
        Assert.True(log.Failed.Wait(TimeSpan.FromMinutes(5)), "the tracker never logged the failed request");
        var e = Assert.Throws<InvalidOperationException>(() => tracker.LogMetrics(2, new Dictionary<string, double> { ["lr"] = 1e-3 }));
        Assert.Contains("runs/set-tag", e.Message);
        Assert.Contains("403", e.Message);
        Assert.Contains("PERMISSION_DENIED", e.Message);
        int sent = stub.Where("runs/log-batch").Count;
        Assert.Throws<InvalidOperationException>(() => tracker.LogMetrics(3, new Dictionary<string, double> { ["lr"] = 1e-3 }));
        Assert.Equal(sent, stub.Where("runs/log-batch").Count);
    }

    [Fact]
    public void Creating_the_run_fails_at_once_with_the_endpoint_and_status()
    {
        using var stub = new MlflowStub
        {
            Override = r => r.Path.EndsWith("runs/create", StringComparison.Ordinal) ? (500, "<html>boom</html>") : null,
        };
        var e = Assert.Throws<InvalidOperationException>(() => new MlflowTracker(Options(stub)));
        Assert.Contains("POST /api/2.0/mlflow/runs/create", e.Message);
        Assert.Contains("HTTP 500", e.Message);
        Assert.Contains("boom", e.Message);
    }

    [Fact]
    public void Too_long_parameter_values_are_refused_not_truncated()
    {
        using var stub = new MlflowStub();
        using var tracker = new MlflowTracker(Options(stub));
        var e = Assert.Throws<ArgumentException>(() => tracker.LogParameters(new Dictionary<string, string> { ["ok"] = "1", ["prompt"] = new string('x', 6001) }));
        Assert.Equal("parameters", e.ParamName);
        Assert.Contains("'prompt'", e.Message);
        Assert.Contains("6001", e.Message);
        tracker.LogParameters(new Dictionary<string, string> { ["prompt"] = new string('x', 6000) });
        tracker.Complete(TrainingRunStatus.Finished);
        var batch = Assert.Single(stub.Where("runs/log-batch")).Json;
        Assert.Equal(6000, batch.GetProperty("params")[0].GetProperty("value").GetString()!.Length);
    }

    [Fact]
    public void Non_finite_metric_values_are_sent_as_protobuf_json_literals()
    {
        using var stub = new MlflowStub();
        using (var tracker = new MlflowTracker(Options(stub)))
        {
            tracker.LogMetrics(0, new Dictionary<string, double> { ["train/loss"] = double.NaN, ["mfu"] = double.PositiveInfinity });
            tracker.Complete(TrainingRunStatus.Finished);
        }

        string text = Assert.Single(stub.Where("runs/log-batch")).Text;
        Assert.Contains("\"value\":\"NaN\"", text);
        Assert.Contains("\"value\":\"Infinity\"", text);
    }

    [Theory]
    [InlineData("TrackingUri", "ftp://x")]
    [InlineData("TrackingUri", "localhost:5000")]
    [InlineData("ExperimentName", " ")]
    [InlineData("RequestTimeout", "0")]
    [InlineData("QueueCapacity", "0")]
    [InlineData("Token", "both")]
    [InlineData("Username", "nopassword")]
    public void Invalid_options_name_the_field_and_the_allowed_range(string field, string value)
    {
        var o = new MlflowTrackerOptions();
        switch (field)
        {
            case "TrackingUri": o.TrackingUri = value; break;
            case "ExperimentName": o.ExperimentName = value; break;
            case "RequestTimeout": o.RequestTimeout = TimeSpan.Zero; break;
            case "QueueCapacity": o.QueueCapacity = 0; break;
            case "Token": (o.Token, o.Username, o.Password) = ("t", "u", "p"); break;
            case "Username": o.Username = "u"; break;
        }

        var e = Assert.Throws<ArgumentException>(() => new MlflowTracker(o));
        Assert.Equal(field, e.ParamName);
        Assert.Contains("allowed:", e.Message);
        Assert.DoesNotContain("\"t\"", e.Message);
    }

    [Fact]
    public void Options_from_environment_read_mlflow_variables()
    {
        Environment.SetEnvironmentVariable(MlflowTrackerOptions.TokenVariable, "tok");
        Environment.SetEnvironmentVariable(MlflowTrackerOptions.ExperimentNameVariable, "exp");
        try
        {
            var o = MlflowTrackerOptions.FromEnvironment("http://127.0.0.1:5001");
            Assert.Equal(("http://127.0.0.1:5001", "exp", "tok"), (o.TrackingUri, o.ExperimentName, o.Token));
            Assert.Empty(o.GetValidationErrors());
        }
        finally
        {
            Environment.SetEnvironmentVariable(MlflowTrackerOptions.TokenVariable, null);
            Environment.SetEnvironmentVariable(MlflowTrackerOptions.ExperimentNameVariable, null);
        }
    }
}
