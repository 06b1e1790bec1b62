using Microsoft.Extensions.AI;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;

namespace YingHub.Moe.Extensions.AI;

/// <summary>
/// <see cref="ChatOptions"/> onto <see cref="SamplingOptions"/>. A value out of range is an
/// <see cref="ArgumentException"/> whose <see cref="ArgumentException.ParamName"/> is the <see cref="ChatOptions"/>
/// property (a server turns it into its own field name); what the model cannot do at all (tools, structured output,
/// server-side conversations) is a <see cref="NotSupportedException"/>.
/// </summary>
internal static class ChatOptionsMapping
{
    /// <summary>The largest temperature <see cref="SamplingOptions"/> accepts.</summary>
    private const double MaxTemperature = 100;

    /// <summary>The largest presence or frequency penalty <see cref="SamplingOptions"/> accepts.</summary>
    private const double MaxPenalty = 100;

    /// <summary>The sampling of one request, and its text stop sequences.</summary>
    public static (SamplingOptions Sampling, List<string> Stops) Map(ChatOptions? options, YingHubMoeChatClientOptions settings, string modelId)
    {
        var sampling = new SamplingOptions { MaxNewTokens = settings.DefaultMaxOutputTokens };
        var stops = new List<string>();
        if (options is null) return (sampling, stops);
        RefuseUnsupported(options);
        if (options.ModelId is { } id && id != modelId)
            throw Invalid(nameof(ChatOptions.ModelId), id, $"'{modelId}' (the model this client serves), or null");

        if (options.MaxOutputTokens is { } max)
        {
            if (max < 1 || max > settings.MaxOutputTokensLimit)
                throw Invalid(nameof(ChatOptions.MaxOutputTokens), max, $"[1, {settings.MaxOutputTokensLimit}]");
            sampling.MaxNewTokens = max;
        }

        if (options.Temperature is { } t)
        {
            if (!(t >= 0 && t <= MaxTemperature)) throw Invalid(nameof(ChatOptions.Temperature), t, $"[0, {MaxTemperature}] (0: greedy)");
            // OpenAI's temperature 0 is deterministic decoding; SamplingOptions says so with Greedy
            if (t == 0) sampling.Greedy = true;
            else sampling.Temperature = t;
        }

        if (options.TopP is { } p)
        {
            if (!(p > 0 && p <= 1)) throw Invalid(nameof(ChatOptions.TopP), p, "(0, 1]");
            sampling.TopP = p;
        }

        if (options.TopK is { } k)
        {
            if (k < 1) throw Invalid(nameof(ChatOptions.TopK), k, ">= 1");
            sampling.TopK = k;
        }

        sampling.Seed = options.Seed;
        sampling.FrequencyPenalty = Penalty(nameof(ChatOptions.FrequencyPenalty), options.FrequencyPenalty);
        sampling.PresencePenalty = Penalty(nameof(ChatOptions.PresencePenalty), options.PresencePenalty);
        if (options.StopSequences is { } given)
        {
            foreach (string? stop in given)
            {
                if (string.IsNullOrEmpty(stop)) throw Invalid(nameof(ChatOptions.StopSequences), stop ?? "null", "non-empty strings");
                stops.Add(stop);
            }
        }

        sampling.ThrowIfInvalid(nameof(options)); // a backstop: every field above is already in range
        return (sampling, stops);
    }

    private static void RefuseUnsupported(ChatOptions options)
    {
        if (options.Tools is { Count: > 0 } tools)
            throw new NotSupportedException($"ChatOptions.Tools: the model cannot call tools ({tools.Count} given).");
        if (options.ToolMode is RequiredChatToolMode)
            throw new NotSupportedException("ChatOptions.ToolMode: the model cannot call tools, so none can be required.");
        if (options.ResponseFormat is { } format and not ChatResponseFormatText)
            throw new NotSupportedException($"ChatOptions.ResponseFormat: the model writes plain text only ({format.GetType().Name} asked for).");
        if (options.ConversationId is not null)
            throw new NotSupportedException("ChatOptions.ConversationId: the client keeps no conversations; send the whole history with every request.");
        if (options.ContinuationToken is not null || options.AllowBackgroundResponses == true)
            throw new NotSupportedException("ChatOptions.AllowBackgroundResponses/ContinuationToken: responses are generated in the foreground only.");
        if (options.Reasoning is not null)
            throw new NotSupportedException("ChatOptions.Reasoning: the model has no reasoning mode.");
    }

    /// <summary>
    /// A penalty in [0, 100]. OpenAI's range is [−2, 2]; a negative penalty rewards repetition, which
    /// <see cref="SamplingOptions"/> cannot express: refused like any value out of range, with the reason.
    /// </summary>
    private static double Penalty(string field, float? value)
    {
        if (value is not { } v) return 0;
        if (!(v >= 0 && v <= MaxPenalty)) throw Invalid(field, v, $"[0, {MaxPenalty}] (negative penalties, which reward repetition, are not supported)");
        return v;
    }

    private static ArgumentException Invalid(string field, object? value, string allowed) =>
        new(new OptionError($"ChatOptions.{field}", value, allowed).Message, field);
}
