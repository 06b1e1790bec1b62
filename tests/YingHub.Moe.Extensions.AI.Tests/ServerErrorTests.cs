using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace YingHub.Moe.Extensions.AI.Tests;

/// <summary>
/// <c>yinghub serve</c>'s refusals over raw HTTP: OpenAI's error JSON with the right status and the field at fault,
/// the API key, the size limits, a busy model, a client that leaves mid-stream and a server that stops mid-stream.
/// </summary>
public sealed class ServerErrorTests : IAsyncLifetime
{
    private const string Key = "secret";
    private readonly TinyModel _tiny = new();
    private RunningServer _server = null!;

    public async Task InitializeAsync() => _server = await RunningServer.StartAsync(_tiny, Key, maxBodyBytes: 4096);

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _tiny.Dispose();
    }

    private static JsonElement ErrorOf(JsonElement body) => body.GetProperty("error");

    [Theory]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"Hi"}],"temperature":-1}""", "temperature")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"Hi"}],"max_tokens":5000}""", "max_tokens")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":0}""", "max_completion_tokens")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"Hi"}],"top_p":"high"}""", "top_p")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"Hi"}],"presence_penalty":-0.5}""", "presence_penalty")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"Hi"}],"stop":[""]}""", "stop")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"Hi"}],"n":3}""", "n")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"Hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}""", "tools")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"tool","content":"42"}]}""", "messages[0].role")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", "messages[0].content[0]")]
    [InlineData("/v1/chat/completions", """{"messages":[]}""", "messages")]
    [InlineData("/v1/chat/completions", """{"model":"tiny-chat"}""", "messages")]
    [InlineData("/v1/completions", """{"prompt":"the","echo":true}""", "echo")]
    [InlineData("/v1/completions", """{"prompt":[1,2,3]}""", "prompt")]
    [InlineData("/v1/completions", """{"prompt":""}""", "prompt")]
    [InlineData("/v1/completions", """{"prompt":"caf\u00e9"}""", "prompt")]
    public async Task A_bad_field_is_a_400_naming_it(string path, string json, string field)
    {
        var (status, body) = await _server.PostAsync(path, json);
        Assert.Equal(400, status);
        var error = ErrorOf(body);
        Assert.Equal(field, error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains(field.Split('[')[0], error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Malformed_json_is_a_400_and_an_unknown_model_a_404()
    {
        var (status, body) = await _server.PostAsync("/v1/completions", "{\"prompt\": ");
        Assert.Equal(400, status);
        Assert.StartsWith("The body is not valid JSON", ErrorOf(body).GetProperty("message").GetString());

        (status, body) = await _server.PostAsync("/v1/completions", """{"prompt":"the","model":"gpt-4o"}""");
        Assert.Equal(404, status);
        Assert.Equal("model_not_found", ErrorOf(body).GetProperty("code").GetString());

        using var response = await _server.Http.GetAsync("/v1/nothing");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Without_the_key_v1_is_a_401_and_health_stays_open()
    {
        using var anonymous = new HttpClient { BaseAddress = new Uri(_server.Address) };
        using var refused = await anonymous.PostAsync("/v1/completions", new StringContent("""{"prompt":"the"}""", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        using (var document = JsonDocument.Parse(await refused.Content.ReadAsStringAsync()))
            Assert.Equal("invalid_api_key", ErrorOf(document.RootElement).GetProperty("code").GetString());

        anonymous.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Key + "x");
        using (var wrong = await anonymous.GetAsync("/v1/models")) Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        anonymous.DefaultRequestHeaders.Authorization = null;
        using var health = await anonymous.GetAsync("/health");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task A_prompt_over_the_context_and_a_body_over_the_limit_are_413s()
    {
        var (status, body) = await _server.PostAsync("/v1/completions", $$"""{"prompt":"{{new string('a', TinyModel.ContextLength + 1)}}"}""");
        Assert.Equal(413, status);
        Assert.Equal("context_length_exceeded", ErrorOf(body).GetProperty("code").GetString());
        Assert.Equal("prompt", ErrorOf(body).GetProperty("param").GetString());

        (status, body) = await _server.PostAsync("/v1/completions", $$"""{"prompt":"the","user":"{{new string('u', 5000)}}"}""");
        Assert.Equal(413, status);
        Assert.Contains("4096 bytes", ErrorOf(body).GetProperty("message").GetString());
    }

    [Fact]
    public async Task While_the_model_is_busy_and_no_request_may_wait_the_answer_is_a_429_with_retry_after()
    {
        await using var busyServer = await RunningServer.StartAsync(_tiny, options: new YingHubMoeChatClientOptions { MaxQueuedRequests = 0 });
        // a client over the same model holds it: the gate belongs to the model, not to the client
        using var holder = new YingHubMoeChatClient(_tiny.Model, _tiny.Tokenizer);
        await using (var holding = holder.GetStreamingCompletionAsync("the").GetAsyncEnumerator())
        {
            Assert.True(await holding.MoveNextAsync());
            using var response = await busyServer.Http.PostAsync("/v1/completions", new StringContent("""{"prompt":"the","max_tokens":2}""", Encoding.UTF8, "application/json"));
            Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
            Assert.Equal("1", response.Headers.GetValues("Retry-After").Single());
            using var document = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal("rate_limit_exceeded", ErrorOf(document.RootElement).GetProperty("code").GetString());
        }

        var (status, _) = await busyServer.PostAsync("/v1/completions", """{"prompt":"the","max_tokens":2}""");
        Assert.Equal(200, status); // free again once the holder is done
    }

    [Fact]
    public async Task A_client_that_leaves_mid_stream_stops_its_generation()
    {
        // far more tokens than the tiny model writes in the seconds a disconnect may take to reach the server (4,000 took
        // 2 s here), so a finished generation means the disconnect was missed
        const int Asked = 500_000;
        await using var server = await RunningServer.StartAsync(_tiny, options: new YingHubMoeChatClientOptions { MaxOutputTokensLimit = Asked });
        // no draining on disposal: by default HttpClient reads on (up to 1 MB or 2 s) to keep the connection for reuse
        using var leaving = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(server.Address) };
        using (var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions"))
        {
            request.Content = new StringContent($$"""{"prompt":"the","max_tokens":{{Asked}},"stream":true}""", Encoding.UTF8, "application/json");
            using var response = await leaving.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
            Assert.StartsWith("data: ", await reader.ReadLineAsync()); // a token has come: the generation runs
        } // the connection closes here

        string line = await LogLineAsync(server, l => l.Contains("cancelled or abandoned"));
        int generated = int.Parse(line.Split("stopped after ")[1].Split(' ')[0]);
        Assert.InRange(generated, 1, Asked - 1);
        var (status, _) = await server.PostAsync("/v1/completions", """{"prompt":"the","max_tokens":2}""");
        Assert.Equal(200, status);
    }

    [Fact]
    public async Task A_server_that_stops_mid_stream_ends_the_stream_with_an_error_and_done()
    {
        await using var stopping = await RunningServer.StartAsync(_tiny);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = new StringContent("""{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4000,"stream":true}""", Encoding.UTF8, "application/json"),
        };
        using var response = await stopping.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync());
        Assert.StartsWith("data: ", await reader.ReadLineAsync());
        var stop = stopping.StopAsync(); // what Ctrl-C or SIGTERM does

        var events = new List<string>();
        while (await reader.ReadLineAsync() is { } line)
            if (line.StartsWith("data: ", StringComparison.Ordinal)) events.Add(line["data: ".Length..]);
        await stop;
        Assert.Equal("[DONE]", events[^1]);
        using var error = JsonDocument.Parse(events[^2]);
        Assert.Equal("server_shutting_down", ErrorOf(error.RootElement).GetProperty("code").GetString());
        Assert.True(events.Count - 2 < 4000, "the generation was stopped, not finished");
    }

    /// <summary>The server's first log line that matches; the request that logs it may still be ending.</summary>
    private static async Task<string> LogLineAsync(RunningServer server, Func<string, bool> match)
    {
        for (int i = 0; i < 600; i++)
        {
            if (server.Logs.Lines.FirstOrDefault(match) is { } line) return line;
            await Task.Delay(50);
        }

        throw new Xunit.Sdk.XunitException($"No matching log line in 30 s; the server logged: {string.Join(" | ", server.Logs.Lines)}");
    }
}
