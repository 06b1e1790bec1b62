namespace YingHub.Moe.Extensions.AI;

/// <summary>A prompt with more tokens than the client accepts (<see cref="YingHubMoeChatClientOptions.MaxPromptTokens"/>, by default the context length).</summary>
public sealed class PromptTooLongException : ArgumentException
{
    /// <summary>A prompt of <paramref name="promptTokens"/> tokens against a limit of <paramref name="limit"/>.</summary>
    public PromptTooLongException(int promptTokens, int limit, string? paramName = null)
        : base($"The prompt has {promptTokens} tokens; at most {limit} are accepted.", paramName)
    {
        PromptTokens = promptTokens;
        Limit = limit;
    }

    /// <summary>The prompt's tokens (after the chat template).</summary>
    public int PromptTokens { get; }

    /// <summary>The most tokens a prompt may have.</summary>
    public int Limit { get; }
}
