using System.Diagnostics;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;

namespace YingHub.Moe.Extensions.AI;

/// <summary>
/// An <see cref="IChatClient"/> over a <see cref="MoeForCausalLM"/> and its tokenizer. Chat messages become a prompt
/// through <see cref="PlainTextChatTemplate"/> (or plain concatenation, see
/// <see cref="YingHubMoeChatClientOptions.UseChatTemplate"/>); <see cref="GetCompletionAsync"/> continues a raw prompt.
/// <see cref="ChatOptions"/> map onto <see cref="SamplingOptions"/> (temperature 0 is greedy decoding); responses
/// report usage (prompt and generated tokens) and the finish reason (<see cref="ChatFinishReason.Stop"/> at a stop
/// sequence or end of text, <see cref="ChatFinishReason.Length"/> at the token budget). Cancellation is checked
/// between tokens. Tools, images and structured output are refused with a <see cref="NotSupportedException"/>.
/// <para>
/// Requests on one model run one at a time, in arrival order (a model instance runs one forward at a time); up to
/// <see cref="YingHubMoeChatClientOptions.MaxQueuedRequests"/> wait. Tokens are computed on the thread that consumes
/// the stream, one per <c>MoveNextAsync</c>.
/// </para>
/// </summary>
public sealed class YingHubMoeChatClient : IChatClient
{
    /// <summary>The provider name in <see cref="ChatClientMetadata"/>.</summary>
    public const string ProviderName = "yinghub-moe";

    private readonly MoeForCausalLM _model;
    private readonly ITextTokenizer _tokenizer;
    private readonly TextGenerator _generator;
    private readonly YingHubMoeChatClientOptions _settings;
    private readonly ILogger _logger;
    private readonly ModelGate _gate;
    private readonly long? _endOfText;
    private readonly bool _ownsModel;
    private int _disposed;

    /// <summary>A client over <paramref name="model"/> and its <paramref name="tokenizer"/>; the caller keeps ownership of the model.</summary>
    /// <exception cref="ArgumentException">Invalid options, or a tokenizer whose vocabulary differs from the model's.</exception>
    public YingHubMoeChatClient(MoeForCausalLM model, ITextTokenizer tokenizer, YingHubMoeChatClientOptions? options = null, ILogger<YingHubMoeChatClient>? logger = null)
        : this(model, tokenizer, options, logger, ownsModel: false, defaultModelId: null)
    {
    }

    private YingHubMoeChatClient(MoeForCausalLM model, ITextTokenizer tokenizer, YingHubMoeChatClientOptions? options, ILogger? logger, bool ownsModel, string? defaultModelId)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(tokenizer);
        _settings = options ?? new YingHubMoeChatClientOptions();
        _settings.ThrowIfInvalid(nameof(options));
        _generator = new TextGenerator(model, tokenizer); // checks the vocabularies agree
        _model = model;
        _tokenizer = tokenizer;
        _logger = logger ?? NullLogger<YingHubMoeChatClient>.Instance;
        _gate = ModelGate.For(model);
        _ownsModel = ownsModel;
        _endOfText = _settings.StopAtEndOfText ? (tokenizer as TiktokenTextTokenizer)?.EndOfTextId : null;
        ModelId = _settings.ModelId ?? defaultModelId ?? YingHubMoeChatClientOptions.DefaultModelId;
        MaxPromptTokens = _settings.MaxPromptTokens ?? model.Options.ContextLength;
        Metadata = new ChatClientMetadata(ProviderName, providerUri: null, defaultModelId: ModelId);
    }

    /// <summary>
    /// Loads the checkpoint in <paramref name="directory"/> (model and tokenizer); the client owns the model and
    /// disposes it. The model id defaults to the directory's name.
    /// </summary>
    /// <exception cref="FileNotFoundException">The directory holds no checkpoint or no tokenizer.</exception>
    /// <exception cref="InvalidDataException">A file is corrupt or does not match the configuration.</exception>
    /// <exception cref="ArgumentException">Invalid options, or a tokenizer whose vocabulary differs from the model's.</exception>
    public static YingHubMoeChatClient FromCheckpoint(string directory, YingHubMoeChatClientOptions? options = null, ILogger<YingHubMoeChatClient>? logger = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        (options ?? new YingHubMoeChatClientOptions()).ThrowIfInvalid(nameof(options)); // before the slow load
        var tokenizer = TokenizerFiles.Load(directory);
        var model = MoeCheckpoint.Load(directory);
        try
        {
            string name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)));
            return new YingHubMoeChatClient(model, tokenizer, options, logger, ownsModel: true, defaultModelId: name);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The model id this client reports and accepts.</summary>
    public string ModelId { get; }

    /// <summary>The longest prompt accepted, in tokens (after the chat template).</summary>
    public int MaxPromptTokens { get; }

    /// <summary>The most new tokens one request may ask for.</summary>
    public int MaxOutputTokensLimit => _settings.MaxOutputTokensLimit;

    /// <summary>Provider name, and the model id as the default model.</summary>
    public ChatClientMetadata Metadata { get; }

    /// <inheritdoc />
    /// <exception cref="ArgumentException">A <see cref="ChatOptions"/> value out of range (named by <see cref="ArgumentException.ParamName"/>), or text the tokenizer cannot encode.</exception>
    /// <exception cref="PromptTooLongException">The formatted prompt is longer than <see cref="MaxPromptTokens"/>.</exception>
    /// <exception cref="NotSupportedException">Tools, images, structured output or another unsupported option.</exception>
    /// <exception cref="ModelBusyException">Too many requests already wait for the model.</exception>
    public Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        Respond(PrepareChat(messages, options), cancellationToken);

    /// <inheritdoc />
    /// <remarks>Arguments are checked by this call; a busy model (<see cref="ModelBusyException"/>) shows on the first <c>MoveNextAsync</c>,
    /// which returns an update with the assistant role and no content once the model is free.</remarks>
    public IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        CancellationToken cancellationToken = default) =>
        Stream(PrepareChat(messages, options), cancellationToken);

    /// <summary>Continues <paramref name="prompt"/> as it is (no chat template): a completion.</summary>
    /// <exception cref="ArgumentException">An empty prompt, text the tokenizer cannot encode, or a <see cref="ChatOptions"/> value out of range.</exception>
    /// <exception cref="PromptTooLongException">The prompt is longer than <see cref="MaxPromptTokens"/>.</exception>
    /// <exception cref="NotSupportedException">An unsupported option.</exception>
    /// <exception cref="ModelBusyException">Too many requests already wait for the model.</exception>
    public Task<ChatResponse> GetCompletionAsync(string prompt, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        Respond(Prepare(prompt, nameof(prompt), options, []), cancellationToken);

    /// <summary>Streams the continuation of <paramref name="prompt"/> (no chat template); the same updates as <see cref="GetStreamingResponseAsync"/>.</summary>
    /// <exception cref="ArgumentException">An empty prompt, text the tokenizer cannot encode, or a <see cref="ChatOptions"/> value out of range.</exception>
    /// <exception cref="PromptTooLongException">The prompt is longer than <see cref="MaxPromptTokens"/>.</exception>
    /// <exception cref="NotSupportedException">An unsupported option.</exception>
    public IAsyncEnumerable<ChatResponseUpdate> GetStreamingCompletionAsync(string prompt, ChatOptions? options = null, CancellationToken cancellationToken = default) =>
        Stream(Prepare(prompt, nameof(prompt), options, []), cancellationToken);

    /// <summary>The prompt the model continues for <paramref name="messages"/>: the chat template, or the plain concatenation.</summary>
    /// <exception cref="NotSupportedException">A message with another role or non-text content.</exception>
    public string FormatPrompt(IEnumerable<ChatMessage> messages, ChatOptions? options = null) =>
        _settings.UseChatTemplate
            ? PlainTextChatTemplate.Format(messages, options?.Instructions)
            : PlainTextChatTemplate.Concatenate(messages, options?.Instructions);

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return Metadata;
        if (serviceType.IsInstanceOfType(this)) return this;
        if (serviceType.IsInstanceOfType(_model)) return _model;
        if (serviceType.IsInstanceOfType(_tokenizer)) return _tokenizer;
        return null;
    }

    /// <summary>Disposes the model when the client loaded it (<see cref="FromCheckpoint"/>); idempotent.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        if (_ownsModel) _model.Dispose();
    }

    /// <summary>One checked request: the prompt's ids, the sampling and the text stop sequences.</summary>
    private sealed record Request(long[] Prompt, SamplingOptions Sampling, IReadOnlyList<string> Stops);

    private Request PrepareChat(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        string prompt = FormatPrompt(messages, options);
        return Prepare(prompt, nameof(messages), options, _settings.UseChatTemplate ? PlainTextChatTemplate.StopSequences : []);
    }

    private Request Prepare(string prompt, string paramName, ChatOptions? options, IReadOnlyList<string> templateStops)
    {
        ArgumentNullException.ThrowIfNull(prompt, paramName);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        var (sampling, stops) = ChatOptionsMapping.Map(options, _settings, ModelId);
        int[] ids;
        try
        {
            ids = _tokenizer.Encode(prompt);
        }
        catch (ArgumentException ex)
        {
            string reason = ex.ParamName is null ? ex.Message : ex.Message.Replace($" (Parameter '{ex.ParamName}')", "", StringComparison.Ordinal);
            throw new ArgumentException($"The {paramName} cannot be encoded by the model's {_tokenizer.Name} tokenizer: {reason}", paramName, ex);
        }

        if (ids.Length == 0) throw new ArgumentException($"The {paramName} is empty: the model needs at least one token to continue.", paramName);
        if (ids.Length > MaxPromptTokens) throw new PromptTooLongException(ids.Length, MaxPromptTokens, paramName);
        stops.AddRange(templateStops);
        return new Request(ids.Select(i => (long)i).ToArray(), sampling, stops);
    }

    private Task<ChatResponse> Respond(Request request, CancellationToken cancellationToken) =>
        // off the caller's thread: the whole generation runs in the consuming loop
        Task.Run(() => Stream(request, cancellationToken).ToChatResponseAsync(cancellationToken), cancellationToken);

    private async IAsyncEnumerable<ChatResponseUpdate> Stream(Request request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        string responseId = $"yinghub-{Guid.NewGuid():N}";
        var created = DateTimeOffset.UtcNow;
        ChatResponseUpdate Update(IList<AIContent> contents) =>
            new(ChatRole.Assistant, contents) { ResponseId = responseId, MessageId = responseId, CreatedAt = created, ModelId = ModelId };

        using var lease = await _gate.EnterAsync(_settings.MaxQueuedRequests, cancellationToken).ConfigureAwait(false);
        ObjectDisposedException.ThrowIf(_disposed != 0, this);
        yield return Update([]); // the model is ours: a server can send its headers now

        var clock = Stopwatch.StartNew();
        int generated = 0;
        GenerationFinish? finish = null;
        try
        {
            // one token per MoveNext: cancellation is checked before each, and a consumer that stops early stops the decoding
            foreach (TextChunk chunk in _generator.Chunks(request.Prompt, request.Sampling, request.Stops, _endOfText, cancellationToken))
            {
                generated += chunk.Tokens;
                finish = chunk.Finish ?? finish;
                if (chunk.Text.Length > 0) yield return Update([new TextContent(chunk.Text)]);
            }
        }
        finally
        {
            if (finish is null)
                _logger.LogInformation("{Model}: stopped after {Generated} tokens of a {Prompt}-token prompt (cancelled or abandoned)", ModelId, generated, request.Prompt.Length);
            else
                _logger.LogInformation("{Model}: {Generated} tokens ({Finish}) after a {Prompt}-token prompt in {Seconds:F2} s",
                    ModelId, generated, finish, request.Prompt.Length, clock.Elapsed.TotalSeconds);
        }

        var usage = new UsageDetails { InputTokenCount = request.Prompt.Length, OutputTokenCount = generated, TotalTokenCount = request.Prompt.Length + generated };
        var last = Update([new UsageContent(usage)]);
        last.FinishReason = finish == GenerationFinish.Length ? ChatFinishReason.Length : ChatFinishReason.Stop;
        yield return last;
    }
}
