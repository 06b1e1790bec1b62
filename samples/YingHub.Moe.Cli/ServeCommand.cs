using System.CommandLine;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Extensions.AI;

namespace YingHub.Moe.Cli;

/// <summary>
/// <c>yinghub serve</c>: an OpenAI-compatible HTTP server (Kestrel, minimal APIs) over a checkpoint, through
/// <see cref="YingHubMoeChatClient"/>, so the server decodes exactly as the <c>IChatClient</c> does. Requests run one
/// at a time on the model and queue up to <c>--max-queue</c>; Ctrl-C or SIGTERM stops generations between tokens and
/// shuts down.
/// </summary>
internal static class ServeCommand
{
    /// <summary>The port without <c>--port</c>.</summary>
    public const int DefaultPort = 8080;

    /// <summary>The largest request body without <c>--max-body-bytes</c>: 1 MiB, far more than any prompt of a context-length model needs.</summary>
    public const long DefaultMaxBodyBytes = 1 << 20;

    /// <summary>The environment variable read when <c>--api-key</c> is absent, so the key need not show in the process list.</summary>
    public const string ApiKeyVariable = "YINGHUB_API_KEY";

    /// <summary>How long a shutdown waits for in-flight requests to end after their generations were cancelled.</summary>
    private static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(10);

    /// <summary>What <c>yinghub serve</c> was asked for; <paramref name="Logs"/> receives the server's log too (tests read it).</summary>
    internal sealed record Settings(string Host = "127.0.0.1", int Port = DefaultPort, string? ApiKey = null, long MaxBodyBytes = DefaultMaxBodyBytes,
        bool ConsoleLogging = true, ILoggerProvider? Logs = null);

    public static Command Create()
    {
        var defaults = new YingHubMoeChatClientOptions();
        var checkpoint = new Option<string>("--checkpoint") { Description = "Checkpoint directory (config.json, model.safetensors, tokenizer.json).", Required = true };
        var port = new Option<int>("--port") { Description = "TCP port (0: any free port, printed at start).", DefaultValueFactory = _ => DefaultPort };
        var host = new Option<string>("--host") { Description = "Address to listen on: an IP address (0.0.0.0 for every interface) or localhost.", DefaultValueFactory = _ => "127.0.0.1" };
        var apiKey = new Option<string?>("--api-key") { Description = $"Require 'Authorization: Bearer KEY' on /v1/* (default: ${ApiKeyVariable}, if set)." };
        var modelId = new Option<string?>("--model-id") { Description = "The model id in /v1/models and responses (default: the checkpoint directory's name)." };
        var maxTokens = new Option<int>("--max-tokens") { Description = "The most new tokens a request may ask for (max_tokens).", DefaultValueFactory = _ => defaults.MaxOutputTokensLimit };
        var defaultTokens = new Option<int>("--default-tokens") { Description = "New tokens when a request gives no max_tokens.", DefaultValueFactory = _ => defaults.DefaultMaxOutputTokens };
        var maxPrompt = Cli.OptionalInt("--max-prompt-tokens", "The longest prompt in tokens, after the chat template (default: the model's context length); longer ones get 413.");
        var maxQueue = new Option<int>("--max-queue") { Description = "Requests that may wait while one generates; more get 429.", DefaultValueFactory = _ => defaults.MaxQueuedRequests };
        var maxBody = new Option<long>("--max-body-bytes") { Description = "The largest request body; larger ones get 413.", DefaultValueFactory = _ => DefaultMaxBodyBytes };
        var command = new Command("serve", "Serve a checkpoint over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health).")
            { checkpoint, port, host, apiKey, modelId, maxTokens, defaultTokens, maxPrompt, maxQueue, maxBody };
        command.SetAction(parse => Cli.Run(() => Run(parse.GetValue(checkpoint)!, new YingHubMoeChatClientOptions
        {
            ModelId = parse.GetValue(modelId), MaxOutputTokensLimit = parse.GetValue(maxTokens), DefaultMaxOutputTokens = parse.GetValue(defaultTokens),
            MaxPromptTokens = parse.GetValue(maxPrompt), MaxQueuedRequests = parse.GetValue(maxQueue),
        }, new Settings(parse.GetValue(host)!, parse.GetValue(port), parse.GetValue(apiKey) ?? NonEmpty(Environment.GetEnvironmentVariable(ApiKeyVariable)),
            parse.GetValue(maxBody)))));
        return command;
    }

    /// <summary>The flag that sets each validated option, so an error names what the user typed.</summary>
    private static readonly Dictionary<string, string> FlagOf = new()
    {
        [nameof(YingHubMoeChatClientOptions.MaxOutputTokensLimit)] = "--max-tokens", [nameof(YingHubMoeChatClientOptions.DefaultMaxOutputTokens)] = "--default-tokens",
        [nameof(YingHubMoeChatClientOptions.MaxPromptTokens)] = "--max-prompt-tokens", [nameof(YingHubMoeChatClientOptions.MaxQueuedRequests)] = "--max-queue",
        [nameof(YingHubMoeChatClientOptions.ModelId)] = "--model-id",
    };

    private static string? NonEmpty(string? value) => string.IsNullOrEmpty(value) ? null : value;

    private static int Run(string checkpoint, YingHubMoeChatClientOptions options, Settings settings)
    {
        var problems = options.GetValidationErrors().Select(e => FlagOf.Aggregate(e.Message, (m, f) => m.Replace(f.Key, f.Value, StringComparison.Ordinal))).ToList();
        if (settings.Port is < 0 or > IPEndPoint.MaxPort) problems.Add($"--port {settings.Port} is invalid; allowed: [0, {IPEndPoint.MaxPort}].");
        if (settings.MaxBodyBytes < 1) problems.Add($"--max-body-bytes {settings.MaxBodyBytes} is invalid; allowed: >= 1.");
        if (ListenAddress(settings.Host) is null) problems.Add($"--host '{settings.Host}' is invalid; allowed: an IP address (127.0.0.1, 0.0.0.0, ::) or localhost.");
        if (problems.Count > 0) throw new CliException(string.Join(" ", problems), 2);

        Cli.RequireTorch();
        var (model, tokenizer) = CheckpointLoader.Load(checkpoint);
        using (model)
        {
            options.ModelId ??= Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(checkpoint)));
            var app = CreateApp(model, tokenizer, options, settings);
            app.StartAsync().GetAwaiter().GetResult();
            Console.WriteLine($"yinghub serve: '{options.ModelId}' ({model.ParameterCount:N0} parameters, context {model.Options.ContextLength}, {tokenizer.Name} tokenizer) "
                + $"listening on {BoundAddress(app)} (Ctrl-C to stop)");
            if (settings.ApiKey is null && !IPAddress.IsLoopback(ListenAddress(settings.Host)!))
                Console.Error.WriteLine($"Warning: listening on {settings.Host} without an API key: anyone who reaches this address can use the model (--api-key or ${ApiKeyVariable}).");
            app.WaitForShutdownAsync().GetAwaiter().GetResult();
            app.DisposeAsync().AsTask().GetAwaiter().GetResult();
            Console.WriteLine("yinghub serve: stopped.");
            return 0;
        }
    }

    /// <summary>
    /// The server, not yet started: Kestrel on <see cref="Settings.Host"/>:<see cref="Settings.Port"/> with the body
    /// limit, the endpoints of <see cref="OpenAiEndpoints"/>, one log line per request of the client, and a shutdown that
    /// cancels generations (their tokens stop) and waits for the requests to answer.
    /// </summary>
    internal static WebApplication CreateApp(MoeForCausalLM model, ITextTokenizer tokenizer, YingHubMoeChatClientOptions options, Settings settings)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        if (settings.ConsoleLogging)
        {
            builder.Logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        }

        if (settings.Logs is not null) builder.Logging.AddProvider(settings.Logs);
        builder.Logging.AddFilter("Microsoft", LogLevel.Warning);

        builder.Services.Configure<ConsoleLifetimeOptions>(o => o.SuppressStatusMessages = true);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ShutdownTimeout);
        builder.WebHost.UseKestrel(kestrel =>
        {
            kestrel.Listen(ListenAddress(settings.Host)!, settings.Port);
            kestrel.Limits.MaxRequestBodySize = settings.MaxBodyBytes;
            kestrel.AddServerHeader = false;
        });
        // the container owns the client (not the model) and gives it the server's logging
        builder.Services.AddSingleton(services => new YingHubMoeChatClient(model, tokenizer, options, services.GetService<ILogger<YingHubMoeChatClient>>()));
        var app = builder.Build();
        OpenAiEndpoints.Map(app, app.Services.GetRequiredService<YingHubMoeChatClient>(), settings.ApiKey);
        return app;
    }

    /// <summary>The address a started server listens on, e.g. <c>http://127.0.0.1:41234</c> (the real port when <c>--port 0</c>).</summary>
    internal static string BoundAddress(WebApplication app) =>
        app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault()
        ?? throw new InvalidOperationException("The server has no address; was it started?");

    private static IPAddress? ListenAddress(string host) =>
        host == "localhost" ? IPAddress.Loopback : IPAddress.TryParse(host, out IPAddress? address) ? address : null;
}
