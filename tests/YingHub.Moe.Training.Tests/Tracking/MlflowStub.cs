using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace YingHub.Moe.Training.Tests.Tracking;

/// <summary>A minimal MLflow REST server on 127.0.0.1 (a real HttpListener) that records every request.</summary>
internal sealed class MlflowStub : IDisposable
{
    public sealed record Request(string Method, string Path, string Query, byte[] Body, string? Authorization, string? ContentType)
    {
        public string Text => Encoding.UTF8.GetString(Body);

        public JsonElement Json
        {
            get
            {
                using var doc = JsonDocument.Parse(Body);
                return doc.RootElement.Clone();
            }
        }
    }

    private readonly HttpListener _listener = new();
    private readonly Task _loop;

    public MlflowStub()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Uri = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Uri + "/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public string Uri { get; }

    /// <summary>The experiment id get-by-name finds; null answers RESOURCE_DOES_NOT_EXIST.</summary>
    public string? ExistingExperimentId { get; set; }

    /// <summary>Answers a request with (status, JSON body) instead of the default; null keeps the default.</summary>
    public Func<Request, (int Status, string Body)?>? Override { get; set; }

    public ConcurrentQueue<Request> Requests { get; } = new();

    public IReadOnlyList<Request> Where(string pathSuffix) => Requests.Where(r => r.Path.EndsWith(pathSuffix, StringComparison.Ordinal)).ToList();

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try
            {
                context = await _listener.GetContextAsync();
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
            {
                return;
            }

            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            var request = new Request(context.Request.HttpMethod, context.Request.Url!.AbsolutePath, context.Request.Url.Query,
                body.ToArray(), context.Request.Headers["Authorization"], context.Request.ContentType);
            Requests.Enqueue(request);
            var (status, json) = Override?.Invoke(request) ?? Default(request);
            byte[] bytes = Encoding.UTF8.GetBytes(json);
            context.Response.StatusCode = status;
            context.Response.ContentType = "application/json";
            context.Response.ContentLength64 = bytes.Length;
            await context.Response.OutputStream.WriteAsync(bytes);
            context.Response.Close();
        }
    }

    private (int, string) Default(Request r) => r.Path switch
    {
        "/api/2.0/mlflow/experiments/get-by-name" => ExistingExperimentId is null
            ? (404, """{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Could not find experiment"}""")
            : (200, $$$"""{"experiment":{"experiment_id":"{{{ExistingExperimentId}}}","name":"x"}}"""),
        "/api/2.0/mlflow/experiments/create" => (200, """{"experiment_id":"7"}"""),
        "/api/2.0/mlflow/runs/create" => (200, """{"run":{"info":{"run_id":"run42","experiment_id":"7","status":"RUNNING"}}}"""),
        _ => (200, "{}"),
    };

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        try
        {
            _loop.Wait(TimeSpan.FromSeconds(2));
        }
        catch (AggregateException)
        {
        }
    }
}
