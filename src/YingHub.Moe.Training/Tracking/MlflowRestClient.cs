using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// The few MLflow REST API 2.0 calls the tracker needs, over one <see cref="HttpClient"/>. Every failure becomes an
/// <see cref="InvalidOperationException"/> naming the endpoint, the HTTP status and MLflow's <c>error_code</c> and
/// <c>message</c>.
/// </summary>
internal sealed class MlflowRestClient : IDisposable
{
    private static readonly JsonSerializerOptions Json = new()
    {
        // MLflow parses request bodies with protobuf's JSON rules, which accept "NaN" and "Infinity".
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly HttpClient _http;
    private readonly string _base;
    private readonly TimeSpan _timeout;

    public MlflowRestClient(MlflowTrackerOptions options, HttpMessageHandler? handler)
    {
        _http = handler is null ? new HttpClient() : new HttpClient(handler, disposeHandler: false);
        _http.Timeout = options.RequestTimeout;
        _timeout = options.RequestTimeout;
        _base = options.TrackingUri.TrimEnd('/');
        if (options.Token is not null)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", options.Token);
        else if (options.Username is not null)
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
                Convert.ToBase64String(Encoding.UTF8.GetBytes($"{options.Username}:{options.Password}")));
    }

    /// <summary>Sends a JSON request to <c>/api/2.0/mlflow/{endpoint}</c> and returns the parsed response body.</summary>
    public Task<JsonElement> CallAsync(HttpMethod method, string endpoint, object? body, CancellationToken cancellationToken = default)
    {
        var request = new HttpRequestMessage(method, $"{_base}/api/2.0/mlflow/{endpoint}");
        if (body is not null) request.Content = new StringContent(JsonSerializer.Serialize(body, Json), Encoding.UTF8, "application/json");
        return SendAsync(request, $"{method} /api/2.0/mlflow/{endpoint.Split('?')[0]}", cancellationToken);
    }

    /// <summary>Uploads <paramref name="bytes"/> through the artifact proxy (<c>mlflow server --serve-artifacts</c>).</summary>
    public Task<JsonElement> UploadArtifactAsync(string experimentId, string runId, string fileName, byte[] bytes, CancellationToken cancellationToken = default)
    {
        string path = $"/api/2.0/mlflow-artifacts/artifacts/{Uri.EscapeDataString(experimentId)}/{Uri.EscapeDataString(runId)}/artifacts/{Uri.EscapeDataString(fileName)}";
        var request = new HttpRequestMessage(HttpMethod.Put, _base + path) { Content = new ByteArrayContent(bytes) };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        return SendAsync(request, "PUT " + path, cancellationToken);
    }

    private async Task<JsonElement> SendAsync(HttpRequestMessage request, string endpoint, CancellationToken cancellationToken)
    {
        using (request)
        {
            HttpResponseMessage response;
            try
            {
                response = await _http.SendAsync(request, cancellationToken).ConfigureAwait(false);
            }
            catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
            {
                throw new InvalidOperationException($"MLflow {endpoint} timed out after {_timeout} (MlflowTrackerOptions.RequestTimeout).", e);
            }
            catch (HttpRequestException e)
            {
                throw new InvalidOperationException($"MLflow {endpoint} at {_base} failed: {e.Message}", e);
            }

            using (response)
            {
                string text = await response.Content.ReadAsStringAsync(cancellationToken).ConfigureAwait(false);
                if (!response.IsSuccessStatusCode) throw Failure(endpoint, response.StatusCode, text);
                if (string.IsNullOrWhiteSpace(text)) return default;
                try
                {
                    using var doc = JsonDocument.Parse(text);
                    return doc.RootElement.Clone();
                }
                catch (JsonException)
                {
                    return default;
                }
            }
        }
    }

    /// <summary>The exception for a non-success response (also used to recognise MLflow's error codes).</summary>
    internal static MlflowRequestException Failure(string endpoint, HttpStatusCode status, string body)
    {
        string? code = null, message = null;
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object)
            {
                if (doc.RootElement.TryGetProperty("error_code", out var c)) code = c.GetString();
                if (doc.RootElement.TryGetProperty("message", out var m)) message = m.GetString();
            }
        }
        catch (JsonException)
        {
        }

        string detail = code is null && message is null
            ? (body.Length > 300 ? body[..300] + "…" : body)
            : $"{code ?? "(no error_code)"}: {message ?? "(no message)"}";
        return new MlflowRequestException($"MLflow {endpoint} failed with HTTP {(int)status} {status}: {detail}", (int)status, code);
    }

    public void Dispose() => _http.Dispose();
}
