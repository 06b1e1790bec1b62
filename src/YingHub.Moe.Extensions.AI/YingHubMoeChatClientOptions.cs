using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Extensions.AI;

/// <summary>
/// Settings of a <see cref="YingHubMoeChatClient"/>: which checkpoint (for dependency injection), the model id it
/// reports, the defaults and bounds of a request, and how many requests may wait for the model.
/// <see cref="GetValidationErrors"/> names any bad field.
/// </summary>
public sealed class YingHubMoeChatClientOptions : IValidatableOptions
{
    /// <summary>The largest value of <see cref="MaxOutputTokensLimit"/>, <see cref="MaxPromptTokens"/> and <see cref="MaxQueuedRequests"/>.</summary>
    public const int Largest = 1_000_000;

    /// <summary>
    /// The checkpoint directory (<c>config.json</c>, <c>model.safetensors</c>, <c>tokenizer.json</c>) that
    /// <c>AddYingHubMoeChatClient</c> loads; unused when a model is passed to the constructor.
    /// </summary>
    public string? CheckpointDirectory { get; set; }

    /// <summary>The model id the client reports (and accepts in <c>ChatOptions.ModelId</c>); null: the checkpoint directory's name, or <see cref="DefaultModelId"/>.</summary>
    public string? ModelId { get; set; }

    /// <summary>The model id when neither <see cref="ModelId"/> nor a checkpoint directory names one.</summary>
    public const string DefaultModelId = "yinghub-moe";

    /// <summary>New tokens when a request does not say (<c>ChatOptions.MaxOutputTokens</c> null); [1, <see cref="MaxOutputTokensLimit"/>].</summary>
    public int DefaultMaxOutputTokens { get; set; } = 256;

    /// <summary>The most new tokens a request may ask for; [1, 1,000,000]. A larger <c>MaxOutputTokens</c> is refused, not clipped.</summary>
    public int MaxOutputTokensLimit { get; set; } = 4096;

    /// <summary>
    /// The longest prompt in tokens (after the chat template); [1, 1,000,000], or null for the model's context length.
    /// A longer prompt is refused with a <see cref="PromptTooLongException"/> rather than silently cut to the window.
    /// </summary>
    public int? MaxPromptTokens { get; set; }

    /// <summary>
    /// Requests that may wait for the model while another one generates; [0, 1,000,000]. One more is refused with a
    /// <see cref="ModelBusyException"/> (a server answers 429). The model runs one request at a time.
    /// </summary>
    public int MaxQueuedRequests { get; set; } = 64;

    /// <summary>
    /// Format chat messages with <see cref="PlainTextChatTemplate"/> (true, the default); false concatenates the
    /// messages' text as one plain prompt, for a model trained on plain text used as a completion model.
    /// </summary>
    public bool UseChatTemplate { get; set; } = true;

    /// <summary>Stop when the model produces its tokenizer's end-of-text token (GPT-2's <c>&lt;|endoftext|&gt;</c>), if it has one. Default true.</summary>
    public bool StopAtEndOfText { get; set; } = true;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(ModelId is null || !string.IsNullOrWhiteSpace(ModelId), nameof(ModelId), ModelId, "a non-blank id, or null");
        errors.Require(MaxOutputTokensLimit is >= 1 and <= Largest, nameof(MaxOutputTokensLimit), MaxOutputTokensLimit, "[1, 1000000]");
        errors.Require(DefaultMaxOutputTokens >= 1 && DefaultMaxOutputTokens <= MaxOutputTokensLimit, nameof(DefaultMaxOutputTokens), DefaultMaxOutputTokens,
            $"[1, MaxOutputTokensLimit = {MaxOutputTokensLimit}]");
        errors.Require(MaxPromptTokens is null or >= 1 and <= Largest, nameof(MaxPromptTokens), MaxPromptTokens, "[1, 1000000], or null for the context length");
        errors.Require(MaxQueuedRequests is >= 0 and <= Largest, nameof(MaxQueuedRequests), MaxQueuedRequests, "[0, 1000000]");
        return errors;
    }
}
