using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using YingHub.Moe.Cli;

namespace YingHub.Moe.Extensions.AI.Tests;

/// <summary><c>yinghub serve</c>'s application, started in-process on a free loopback port over a <see cref="TinyModel"/>.</summary>
internal sealed class RunningServer : IAsyncDisposable
{
    public const string ModelId = "tiny-chat";

    private readonly WebApplication _app;

    private RunningServer(WebApplication app, string address, string? apiKey, CapturedLogs logs)
    {
        _app = app;
        Address = address;
        Logs = logs;
        Http = new HttpClient { BaseAddress = new Uri(address) };
        if (apiKey is not null) Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    /// <summary>E.g. <c>http://127.0.0.1:41234</c>.</summary>
    public string Address { get; }

    /// <summary>A client that sends the API key, if the server has one.</summary>
    public HttpClient Http { get; }

    /// <summary>What the server logged (the chat client's line per request among it).</summary>
    public CapturedLogs Logs { get; }

    public static async Task<RunningServer> StartAsync(TinyModel tiny, string? apiKey = null, YingHubMoeChatClientOptions? options = null, long maxBodyBytes = ServeCommand.DefaultMaxBodyBytes)
    {
        var logs = new CapturedLogs();
        options ??= new YingHubMoeChatClientOptions();
        options.ModelId ??= ModelId;
        var app = ServeCommand.CreateApp(tiny.Model, tiny.Tokenizer, options,
            new ServeCommand.Settings(Port: 0, ApiKey: apiKey, MaxBodyBytes: maxBodyBytes, ConsoleLogging: false, Logs: logs));
        await app.StartAsync();
        return new RunningServer(app, ServeCommand.BoundAddress(app), apiKey, logs);
    }

    /// <summary>Posts <paramref name="json"/>; returns the status and the parsed body.</summary>
    public async Task<(int Status, JsonElement Body)> PostAsync(string path, string json)
    {
        using var response = await Http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
        string body = await response.Content.ReadAsStringAsync();
        using var document = JsonDocument.Parse(body);
        return ((int)response.StatusCode, document.RootElement.Clone());
    }

    /// <summary>Posts a streaming request and returns the JSON of every <c>data:</c> event before <c>[DONE]</c>, and whether <c>[DONE]</c> came.</summary>
    public async Task<(List<JsonElement> Events, bool Done)> StreamAsync(string path, string json)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        var events = new List<JsonElement>();
        while (await reader.ReadLineAsync() is { } line)
        {
            if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
            string data = line["data: ".Length..];
            if (data == "[DONE]") return (events, true);
            using var document = JsonDocument.Parse(data);
            events.Add(document.RootElement.Clone());
        }

        return (events, false);
    }

    /// <summary>Stops the server as a signal does: in-flight generations are cancelled, then the host ends.</summary>
    public Task StopAsync() => _app.StopAsync();

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>Log lines, kept for assertions.</summary>
internal sealed class CapturedLogs : ILoggerProvider
{
    private readonly ConcurrentQueue<string> _lines = new();

    public IReadOnlyCollection<string> Lines => _lines;

    public ILogger CreateLogger(string categoryName) => new Logger(_lines);

    public void Dispose()
    {
    }

    private sealed class Logger(ConcurrentQueue<string> lines) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            lines.Enqueue(formatter(state, exception));
    }
}
