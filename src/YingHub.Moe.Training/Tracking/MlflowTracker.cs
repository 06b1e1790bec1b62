using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// Logs a run to an MLflow tracking server through its REST API 2.0.
/// <para>
/// The constructor talks to the server synchronously, so a wrong address or credentials fail at once: it looks the
/// experiment up (<c>GET experiments/get-by-name</c>), creates it when MLflow answers <c>RESOURCE_DOES_NOT_EXIST</c>
/// (<c>POST experiments/create</c>) and starts a run (<c>POST runs/create</c>). Everything after that is queued and sent
/// in order by one background task, so the training loop does not wait for the network: metrics and parameters go
/// through <c>POST runs/log-batch</c>, split at MLflow's limits (1000 metrics, 100 parameters, 100 tags per batch); one
/// tag goes through <c>POST runs/set-tag</c>, several through log-batch; artifacts are read when
/// <see cref="LogArtifact"/> is called and uploaded through the artifact proxy
/// (<c>PUT /api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/{file}</c>, which needs the server to
/// serve artifacts: <c>mlflow server --serve-artifacts</c>, the default since MLflow 2.0); <see cref="Complete"/> ends
/// the run (<c>POST runs/update</c> with status and end time) and waits until the queue is sent.
/// </para>
/// <para>
/// The queue is bounded (<see cref="MlflowTrackerOptions.QueueCapacity"/>): when it is full the caller waits, nothing is
/// dropped. The first failed request faults the tracker: later queued requests are discarded and every later call
/// (including <see cref="Complete"/>) throws an <see cref="InvalidOperationException"/> that names the endpoint, the
/// HTTP status and MLflow's <c>error_code</c> and <c>message</c>. Parameter values longer than 6000 characters (MLflow's
/// limit) are refused with an <see cref="ArgumentException"/>, never truncated. Metric timestamps are the time of the
/// <see cref="LogMetrics"/> call.
/// </para>
/// </summary>
public sealed class MlflowTracker : ITrainingTracker
{
    /// <summary>MLflow's limit on metrics per log-batch request.</summary>
    public const int MaxMetricsPerBatch = 1000;

    /// <summary>MLflow's limit on parameters per log-batch request.</summary>
    public const int MaxParamsPerBatch = 100;

    /// <summary>MLflow's limit on tags per log-batch request.</summary>
    public const int MaxTagsPerBatch = 100;

    /// <summary>MLflow's limit on the length of a parameter value.</summary>
    public const int MaxParamValueLength = 6000;

    private readonly MlflowRestClient _client;
    private readonly Channel<Func<Task>> _queue;
    private readonly Task _sender;
    private readonly ILogger _logger;
    private volatile Exception? _fault;
    private bool _completed;
    private bool _disposed;

    /// <summary>Creates (or finds) the experiment and starts a run on the server.</summary>
    /// <param name="options">Server, experiment, run name, credentials and timeouts.</param>
    /// <param name="handler">An HTTP handler to send through (null: a default one); not disposed by the tracker.</param>
    /// <param name="logger">Receives a line per started and ended run.</param>
    /// <exception cref="ArgumentException">Invalid <paramref name="options"/>.</exception>
    /// <exception cref="InvalidOperationException">The server refused a request or could not be reached.</exception>
    public MlflowTracker(MlflowTrackerOptions options, HttpMessageHandler? handler = null, ILogger? logger = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid();
        _logger = logger ?? NullLogger.Instance;
        _client = new MlflowRestClient(options, handler);
        try
        {
            ExperimentId = GetOrCreateExperiment(options.ExperimentName);
            long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            JsonElement run = _client.CallAsync(HttpMethod.Post, "runs/create",
                new { experiment_id = ExperimentId, start_time = now, run_name = options.RunName, tags = Array.Empty<object>() })
                .GetAwaiter().GetResult();
            RunId = run.GetProperty("run").GetProperty("info").GetProperty("run_id").GetString()
                ?? throw new InvalidOperationException("MLflow POST /api/2.0/mlflow/runs/create returned no run_id.");
        }
        catch (MlflowRequestException e)
        {
            _client.Dispose();
            throw new InvalidOperationException(e.Message, e); // the public contract: a plain InvalidOperationException
        }
        catch
        {
            _client.Dispose();
            throw;
        }

        _queue = Channel.CreateBounded<Func<Task>>(new BoundedChannelOptions(options.QueueCapacity)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _sender = Task.Run(SendLoopAsync);
        _logger.LogInformation("MLflow run {RunId} started in experiment {ExperimentId} at {TrackingUri}", RunId, ExperimentId, options.TrackingUri);
    }

    /// <summary>The MLflow experiment id.</summary>
    public string ExperimentId { get; }

    /// <summary>The MLflow run id.</summary>
    public string RunId { get; }

    /// <inheritdoc />
    public void LogParameters(IReadOnlyDictionary<string, string> parameters)
    {
        TrackerGuards.Strings(parameters, nameof(parameters));
        foreach (var (key, value) in parameters)
        {
            if (value.Length > MaxParamValueLength)
                throw new ArgumentException($"Parameter '{key}' has a value of {value.Length} characters; allowed: at most {MaxParamValueLength} (MLflow's limit). Shorten it or log the full text as an artifact.", nameof(parameters));
        }

        var items = parameters.Select(p => new { key = p.Key, value = p.Value }).ToArray();
        foreach (var chunk in items.Chunk(MaxParamsPerBatch))
            Enqueue(() => _client.CallAsync(HttpMethod.Post, "runs/log-batch", new { run_id = RunId, @params = chunk }));
    }

    /// <inheritdoc />
    public void LogMetrics(long step, IReadOnlyDictionary<string, double> metrics)
    {
        TrackerGuards.Metrics(step, metrics);
        long timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var items = metrics.Select(m => new MetricItem(m.Key, m.Value, timestamp, step)).ToArray();
        foreach (var chunk in items.Chunk(MaxMetricsPerBatch))
            Enqueue(() => _client.CallAsync(HttpMethod.Post, "runs/log-batch", new { run_id = RunId, metrics = chunk }));
    }

    /// <inheritdoc />
    public void SetTags(IReadOnlyDictionary<string, string> tags)
    {
        TrackerGuards.Strings(tags, nameof(tags));
        if (tags.Count == 1)
        {
            var (key, value) = tags.First();
            Enqueue(() => _client.CallAsync(HttpMethod.Post, "runs/set-tag", new { run_id = RunId, key, value }));
            return;
        }

        var items = tags.Select(p => new { key = p.Key, value = p.Value }).ToArray();
        foreach (var chunk in items.Chunk(MaxTagsPerBatch))
            Enqueue(() => _client.CallAsync(HttpMethod.Post, "runs/log-batch", new { run_id = RunId, tags = chunk }));
    }

    /// <inheritdoc />
    /// <remarks>The file is read now (a later overwrite does not change what is sent) and stored under its file name.</remarks>
    public void LogArtifact(string path)
    {
        string full = TrackerGuards.ExistingFile(path);
        byte[] bytes = File.ReadAllBytes(full);
        string name = Path.GetFileName(full);
        Enqueue(() => _client.UploadArtifactAsync(ExperimentId, RunId, name, bytes));
    }

    /// <inheritdoc />
    /// <exception cref="InvalidOperationException">A request failed (now or earlier in the run).</exception>
    public void Complete(TrainingRunStatus status)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_completed) throw new InvalidOperationException($"MLflow run {RunId} was already completed.");
        _completed = true;
        long end = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        object body = new { run_id = RunId, status = StatusName(status), end_time = end };
        bool updated = false;
        if (_fault is null)
        {
            Write(async () =>
            {
                await _client.CallAsync(HttpMethod.Post, "runs/update", body).ConfigureAwait(false);
                updated = true;
            });
        }

        _queue.Writer.TryComplete();
        _sender.GetAwaiter().GetResult();
        if (_fault is { } fault)
        {
            if (!updated)
            {
                try
                {
                    _client.CallAsync(HttpMethod.Post, "runs/update", body).GetAwaiter().GetResult(); // best effort: close the run
                }
                catch (InvalidOperationException e)
                {
                    _logger.LogWarning(e, "Could not end MLflow run {RunId}", RunId);
                }
            }

            throw Faulted(fault);
        }

        _logger.LogInformation("MLflow run {RunId} ended: {Status}", RunId, StatusName(status));
    }

    /// <summary>Ends a run that was not completed as <see cref="TrainingRunStatus.Killed"/> (errors are logged, not thrown), then releases the HTTP client.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        if (!_completed)
        {
            try
            {
                Complete(TrainingRunStatus.Killed);
            }
            catch (InvalidOperationException e)
            {
                _logger.LogWarning(e, "MLflow run {RunId} did not end cleanly", RunId);
            }
        }

        _disposed = true;
        _client.Dispose();
    }

    /// <summary>MLflow's name of <paramref name="status"/>: <c>FINISHED</c>, <c>FAILED</c> or <c>KILLED</c>.</summary>
    /// <param name="status">A run status.</param>
    public static string StatusName(TrainingRunStatus status) => status switch
    {
        TrainingRunStatus.Finished => "FINISHED",
        TrainingRunStatus.Failed => "FAILED",
        TrainingRunStatus.Killed => "KILLED",
        _ => throw new ArgumentException($"status = {status} is invalid; allowed: Finished, Failed, Killed.", nameof(status)),
    };

    private string GetOrCreateExperiment(string name)
    {
        try
        {
            JsonElement found = _client.CallAsync(HttpMethod.Get, "experiments/get-by-name?experiment_name=" + Uri.EscapeDataString(name), null)
                .GetAwaiter().GetResult();
            return found.GetProperty("experiment").GetProperty("experiment_id").GetString()!;
        }
        catch (MlflowRequestException e) when (e.ErrorCode == "RESOURCE_DOES_NOT_EXIST")
        {
            JsonElement created = _client.CallAsync(HttpMethod.Post, "experiments/create", new { name }).GetAwaiter().GetResult();
            return created.GetProperty("experiment_id").GetString()!;
        }
    }

    private void Enqueue(Func<Task> send)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_completed) throw new InvalidOperationException($"MLflow run {RunId} was already completed.");
        if (_fault is { } fault) throw Faulted(fault);
        Write(send);
    }

    private void Write(Func<Task> send)
    {
        if (!_queue.Writer.TryWrite(send)) _queue.Writer.WriteAsync(send).AsTask().GetAwaiter().GetResult();
    }

    private async Task SendLoopAsync()
    {
        await foreach (Func<Task> send in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            if (_fault is not null) continue; // discard what was queued after the first failure
            try
            {
                await send().ConfigureAwait(false);
            }
            catch (Exception e)
            {
                _fault = e;
                _logger.LogError(e, "MLflow run {RunId}: a request failed; later tracking calls will throw", RunId);
            }
        }
    }

    private static InvalidOperationException Faulted(Exception fault) =>
        new(string.Create(CultureInfo.InvariantCulture, $"MLflow tracking failed: {fault.Message}"), fault);

    private sealed record MetricItem(string key, double value, long timestamp, long step);
}
