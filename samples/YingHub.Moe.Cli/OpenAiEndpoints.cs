using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using YingHub.Moe.Extensions.AI;

namespace YingHub.Moe.Cli;

/// <summary>
/// OpenAI's HTTP API over a <see cref="YingHubMoeChatClient"/>: <c>POST /v1/chat/completions</c> and
/// <c>POST /v1/completions</c> (with <c>stream: true</c> as server-sent events ending in <c>data: [DONE]</c>),
/// <c>GET /v1/models</c> and <c>GET /health</c>. Every failure is OpenAI's error JSON with its status, never a stack
/// trace. A request holds the model from its first chunk to its last; cancellation (the client leaving, or the server
/// stopping) stops its generation between tokens.
/// </summary>
internal static class OpenAiEndpoints
{
    // relaxed escaping: API JSON, never embedded in HTML, so "it's" stays readable instead of "it\u0027s"
    private static readonly JsonSerializerOptions Json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Maps the endpoints onto <paramref name="app"/>.</summary>
    public static void Map(WebApplication app, YingHubMoeChatClient client, string? apiKey)
    {
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        app.Use(async (context, next) =>
        {
            try
            {
                if (apiKey is not null && context.Request.Path.StartsWithSegments("/v1") && !Authorized(context.Request, apiKey))
                    throw new OpenAiError(StatusCodes.Status401Unauthorized, "Missing or incorrect API key: send 'Authorization: Bearer KEY'.", code: "invalid_api_key");
                await next(context);
            }
            catch (OpenAiError error) when (!context.Response.HasStarted)
            {
                await WriteError(context.Response, error);
            }
            catch (Exception ex) when (!context.Response.HasStarted && ex is not OperationCanceledException)
            {
                app.Logger.LogError(ex, "{Method} {Path} failed", context.Request.Method, context.Request.Path);
                await WriteError(context.Response, new OpenAiError(StatusCodes.Status500InternalServerError, "The server failed to answer this request.", type: "server_error"));
            }
        });

        app.MapGet("/health", () => Results.Json(new { status = "ok", model = client.ModelId }, Json));
        app.MapGet("/v1/models", () => Results.Json(new { @object = "list", data = new[] { ModelCard(client, created) } }, Json));
        app.MapGet("/v1/models/{id}", (string id) => id == client.ModelId
            ? Results.Json(ModelCard(client, created), Json)
            : throw new OpenAiError(StatusCodes.Status404NotFound, $"The model '{id}' does not exist; this server serves '{client.ModelId}'.", "model", code: "model_not_found"));
        app.MapPost("/v1/chat/completions", (HttpContext context) => Complete(context, client, chat: true));
        app.MapPost("/v1/completions", (HttpContext context) => Complete(context, client, chat: false));
        app.MapFallback(context =>
            Task.FromException(new OpenAiError(StatusCodes.Status404NotFound, $"No endpoint {context.Request.Method} {context.Request.Path}.", code: "not_found")));
    }

    private static object ModelCard(YingHubMoeChatClient client, long created) => new { id = client.ModelId, @object = "model", created, owned_by = "yinghub" };

    private static bool Authorized(HttpRequest request, string apiKey)
    {
        const string Scheme = "Bearer ";
        string header = request.Headers.Authorization.ToString();
        if (!header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase)) return false;
        // constant time: the comparison's duration says nothing about how much of the key was right
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[Scheme.Length..].Trim()), Encoding.UTF8.GetBytes(apiKey));
    }

    private static async Task Complete(HttpContext context, YingHubMoeChatClient client, bool chat)
    {
        var request = OpenAiRequest.Parse(await ReadBody(context), chat);
        if (request.Options.ModelId is { } model && model != client.ModelId)
            throw new OpenAiError(StatusCodes.Status404NotFound, $"The model '{model}' does not exist; this server serves '{client.ModelId}'.", "model", code: "model_not_found");

        var stopping = context.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        IAsyncEnumerable<ChatResponseUpdate> updates;
        try
        {
            updates = chat
                ? client.GetStreamingResponseAsync(request.Messages!, request.Options, cancel.Token)
                : client.GetStreamingCompletionAsync(request.Prompt!, request.Options, cancel.Token);
        }
        catch (PromptTooLongException ex)
        {
            throw new OpenAiError(StatusCodes.Status413PayloadTooLarge, Cli.MessageOf(ex), FieldOf(request, ex.ParamName), code: "context_length_exceeded");
        }
        catch (ArgumentException ex)
        {
            string? field = FieldOf(request, ex.ParamName);
            string message = Cli.MessageOf(ex).Replace($"ChatOptions.{ex.ParamName}", field, StringComparison.Ordinal);
            throw new OpenAiError(StatusCodes.Status400BadRequest, message, field);
        }
        catch (NotSupportedException ex)
        {
            throw new OpenAiError(StatusCodes.Status400BadRequest, ex.Message, chat ? "messages" : null);
        }

        await using var stream = updates.GetAsyncEnumerator(cancel.Token);
        try
        {
            // the first update comes once the model is ours: errors until then still get a status code
            if (!await stream.MoveNextAsync()) throw new InvalidOperationException("The chat client ended without a response.");
        }
        catch (ModelBusyException ex)
        {
            context.Response.Headers.RetryAfter = "1";
            throw new OpenAiError(StatusCodes.Status429TooManyRequests, ex.Message, type: "rate_limit_error", code: "rate_limit_exceeded");
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            throw ShuttingDown();
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return; // the client left while waiting
        }

        var reply = new Reply(chat, client.ModelId);
        if (request.Stream)
            await Stream(context, stream, reply, request.IncludeUsage, stopping);
        else
            await Respond(context, stream, reply, stopping);
    }

    private static OpenAiError ShuttingDown() =>
        new(StatusCodes.Status503ServiceUnavailable, "The server is shutting down; the generation was stopped.", type: "server_error", code: "server_shutting_down");

    private static string? FieldOf(OpenAiRequest request, string? paramName) =>
        paramName is null ? null : request.FieldOf.GetValueOrDefault(paramName, paramName);

    private static async Task<byte[]> ReadBody(HttpContext context)
    {
        try
        {
            using var buffer = new MemoryStream();
            await context.Request.Body.CopyToAsync(buffer, context.RequestAborted); // Kestrel's MaxRequestBodySize bounds it
            return buffer.ToArray();
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            long? limit = context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;
            throw new OpenAiError(StatusCodes.Status413PayloadTooLarge, $"The request body is larger than the server's limit of {limit} bytes.", code: "request_too_large");
        }
    }

    private static async Task Respond(HttpContext context, IAsyncEnumerator<ChatResponseUpdate> stream, Reply reply, CancellationToken stopping)
    {
        var text = new StringBuilder();
        try
        {
            while (await stream.MoveNextAsync())
            {
                text.Append(stream.Current.Text);
                reply.Observe(stream.Current);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            throw ShuttingDown();
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return;
        }

        await context.Response.WriteAsJsonAsync(reply.Whole(text.ToString()), Json);
    }

    private static async Task Stream(HttpContext context, IAsyncEnumerator<ChatResponseUpdate> stream, Reply reply, bool includeUsage, CancellationToken stopping)
    {
        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no"; // proxies must not hold chunks back
        try
        {
            if (reply.First() is { } first) await Send(response, first);
            while (await stream.MoveNextAsync())
            {
                reply.Observe(stream.Current);
                if (stream.Current.Text is { Length: > 0 } piece) await Send(response, reply.Delta(piece));
            }

            await Send(response, reply.Last());
            if (includeUsage) await Send(response, reply.UsageChunk());
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            var error = ShuttingDown();
            await Send(response, new { error = new { message = error.Message, type = error.Type, param = error.Param, code = error.Code } });
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException && context.RequestAborted.IsCancellationRequested)
        {
            return; // the client left: its generation has stopped with the cancellation
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // the status line is gone: the error goes in the stream, as OpenAI sends it
            context.RequestServices.GetRequiredService<ILogger<YingHubMoeChatClient>>().LogError(ex, "A streamed answer failed");
            await Send(response, new { error = new { message = "The server failed while generating.", type = "server_error", param = (string?)null, code = (string?)null } });
        }

        await response.WriteAsync("data: [DONE]\n\n");
        await response.Body.FlushAsync();
    }

    private static async Task Send(HttpResponse response, object chunk)
    {
        await response.WriteAsync($"data: {JsonSerializer.Serialize(chunk, Json)}\n\n");
        await response.Body.FlushAsync();
    }

    private static Task WriteError(HttpResponse response, OpenAiError error)
    {
        response.StatusCode = error.Status;
        return response.WriteAsJsonAsync(new { error = new { message = error.Message, type = error.Type, param = error.Param, code = error.Code } }, Json);
    }

    /// <summary>The JSON objects of one answer, in OpenAI's chat or text-completion shape.</summary>
    private sealed class Reply(bool chat, string model)
    {
        private readonly string _id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
        private readonly long _created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        private string? _finish;
        private UsageDetails? _usage;

        public void Observe(ChatResponseUpdate update)
        {
            if (update.FinishReason is { } reason) _finish = reason == ChatFinishReason.Length ? "length" : "stop";
            if (update.Contents.OfType<UsageContent>().FirstOrDefault() is { } usage) _usage = usage.Details;
        }

        private object Usage => new { prompt_tokens = _usage?.InputTokenCount ?? 0, completion_tokens = _usage?.OutputTokenCount ?? 0, total_tokens = _usage?.TotalTokenCount ?? 0 };

        public object Whole(string text) => chat
            ? new { id = _id, @object = "chat.completion", created = _created, model, choices = new[] { new { index = 0, message = new { role = "assistant", content = text }, finish_reason = _finish, logprobs = (object?)null } }, usage = Usage }
            : new { id = _id, @object = "text_completion", created = _created, model, choices = new[] { new { index = 0, text, finish_reason = _finish, logprobs = (object?)null } }, usage = Usage };

        /// <summary>The chat stream opens with the assistant's role, as OpenAI's does; a completion stream has no such chunk.</summary>
        public object? First() => chat ? Chunk(new { role = "assistant", content = "" }, null) : null;

        public object Delta(string piece) => chat ? Chunk(new { content = piece }, null) : Chunk(piece, null);

        public object Last() => chat ? Chunk(new { }, _finish) : Chunk("", _finish);

        public object UsageChunk() => new { id = _id, @object = chat ? "chat.completion.chunk" : "text_completion", created = _created, model, choices = Array.Empty<object>(), usage = Usage };

        private object Chunk(object delta, string? finish) => chat
            ? new { id = _id, @object = "chat.completion.chunk", created = _created, model, choices = new[] { new { index = 0, delta, finish_reason = finish, logprobs = (object?)null } } }
            : new { id = _id, @object = "text_completion", created = _created, model, choices = new[] { new { index = 0, text = (string)delta, finish_reason = finish, logprobs = (object?)null } } };
    }
}
