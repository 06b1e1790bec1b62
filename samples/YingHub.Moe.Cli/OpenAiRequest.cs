using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.AI;

namespace YingHub.Moe.Cli;

/// <summary>An error answered as OpenAI's error JSON: the HTTP status, a message, the request field at fault and a type.</summary>
internal sealed class OpenAiError(int status, string message, string? param = null, string type = OpenAiError.InvalidRequest, string? code = null)
    : Exception(message)
{
    public const string InvalidRequest = "invalid_request_error";

    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string Type { get; } = type;
    public string? Code { get; } = code;

    /// <summary>400, naming <paramref name="param"/>.</summary>
    public static OpenAiError BadField(string param, string message) => new(StatusCodes.Status400BadRequest, message, param);
}

/// <summary>
/// A parsed <c>/v1/chat/completions</c> or <c>/v1/completions</c> body: the messages or the prompt, the
/// <see cref="ChatOptions"/> for <c>YingHubMoeChatClient</c>, and the streaming flags. Fields OpenAI defines that
/// the model cannot honour (tools, logprobs, n &gt; 1, echo, ...) are refused with a 400 naming them, never ignored;
/// fields that do not change the text (user, metadata, store) are ignored, as are unknown ones.
/// </summary>
internal sealed class OpenAiRequest
{
    /// <summary>The most stop sequences a request may give.</summary>
    public const int MaxStopSequences = 16;

    /// <summary>The chat messages (chat endpoint) or null.</summary>
    public List<ChatMessage>? Messages { get; private init; }

    /// <summary>The prompt (completions endpoint) or null.</summary>
    public string? Prompt { get; private init; }

    public ChatOptions Options { get; } = new();

    public bool Stream { get; private set; }

    /// <summary><c>stream_options.include_usage</c>: a last chunk with the token counts.</summary>
    public bool IncludeUsage { get; private set; }

    /// <summary>The JSON field that set each <see cref="ChatOptions"/> property, to name it when the client refuses the value.</summary>
    public Dictionary<string, string> FieldOf { get; } = new()
    {
        [nameof(ChatOptions.MaxOutputTokens)] = "max_tokens", [nameof(ChatOptions.Temperature)] = "temperature",
        [nameof(ChatOptions.TopP)] = "top_p", [nameof(ChatOptions.TopK)] = "top_k", [nameof(ChatOptions.Seed)] = "seed",
        [nameof(ChatOptions.FrequencyPenalty)] = "frequency_penalty", [nameof(ChatOptions.PresencePenalty)] = "presence_penalty",
        [nameof(ChatOptions.StopSequences)] = "stop", [nameof(ChatOptions.ModelId)] = "model", ["messages"] = "messages", ["prompt"] = "prompt",
    };

    /// <summary>Parses a request body; <paramref name="chat"/> selects the chat or the completions shape.</summary>
    /// <exception cref="OpenAiError">Malformed JSON, a field of the wrong type, or an unsupported feature.</exception>
    public static OpenAiRequest Parse(ReadOnlySpan<byte> body, bool chat)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body.ToArray());
        }
        catch (JsonException ex)
        {
            throw new OpenAiError(StatusCodes.Status400BadRequest, $"The body is not valid JSON: {ex.Message}");
        }

        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new OpenAiError(StatusCodes.Status400BadRequest, "The body must be a JSON object.");
            var request = chat
                ? new OpenAiRequest { Messages = ParseMessages(Required(root, "messages")) }
                : new OpenAiRequest { Prompt = ParsePrompt(Required(root, "prompt")) };
            request.ParseOptions(root, chat);
            return request;
        }
    }

    private void ParseOptions(JsonElement root, bool chat)
    {
        Options.ModelId = String(root, "model");
        Stream = Bool(root, "stream") ?? false;
        if (Get(root, "stream_options") is { } streamOptions)
        {
            if (streamOptions.ValueKind != JsonValueKind.Object) throw OpenAiError.BadField("stream_options", "stream_options must be an object.");
            IncludeUsage = Bool(streamOptions, "include_usage", "stream_options.include_usage") ?? false;
        }

        // the newer name wins; the field named in errors is the one the request used
        string maxField = Get(root, "max_completion_tokens") is not null ? "max_completion_tokens" : "max_tokens";
        FieldOf[nameof(ChatOptions.MaxOutputTokens)] = maxField;
        Options.MaxOutputTokens = Int(root, maxField);
        Options.Temperature = Float(root, "temperature");
        Options.TopP = Float(root, "top_p");
        Options.TopK = Int(root, "top_k"); // not OpenAI's, but vLLM's and llama.cpp's
        Options.Seed = Long(root, "seed");
        Options.FrequencyPenalty = Float(root, "frequency_penalty");
        Options.PresencePenalty = Float(root, "presence_penalty");
        Options.StopSequences = Stops(root);

        if (Long(root, "n") is { } n && n != 1) throw OpenAiError.BadField("n", $"n = {n}: one choice per request is supported.");
        if (Get(root, "tools") is { ValueKind: JsonValueKind.Array } tools && tools.GetArrayLength() > 0) throw Unsupported("tools", "the model cannot call tools.");
        if (Get(root, "functions") is { ValueKind: JsonValueKind.Array } functions && functions.GetArrayLength() > 0) throw Unsupported("functions", "the model cannot call functions.");
        if (Get(root, "tool_choice") is { } choice && !(choice.ValueKind == JsonValueKind.String && choice.GetString() is "none" or "auto"))
            throw Unsupported("tool_choice", "the model cannot call tools.");
        if (Get(root, "response_format") is { } format && !(format.ValueKind == JsonValueKind.Object && String(format, "type", "response_format.type") is null or "text"))
            throw Unsupported("response_format", "the model writes plain text only.");
        if (Get(root, "logit_bias") is { ValueKind: JsonValueKind.Object } bias && bias.EnumerateObject().Any()) throw Unsupported("logit_bias", "logit biases are not supported.");
        if (chat ? Bool(root, "logprobs") == true : Get(root, "logprobs") is not null) throw Unsupported("logprobs", "log probabilities are not returned.");
        if (Long(root, "top_logprobs") is > 0) throw Unsupported("top_logprobs", "log probabilities are not returned.");
        if (chat) return;
        if (Bool(root, "echo") == true) throw Unsupported("echo", "the prompt is not echoed.");
        if (String(root, "suffix") is not null) throw Unsupported("suffix", "insertion (a suffix) is not supported.");
        if (Long(root, "best_of") is { } bestOf && bestOf != 1) throw Unsupported("best_of", "one candidate per request is supported.");
    }

    private static OpenAiError Unsupported(string field, string why) => OpenAiError.BadField(field, $"{field}: {why}");

    private static List<ChatMessage> ParseMessages(JsonElement messages)
    {
        if (messages.ValueKind != JsonValueKind.Array || messages.GetArrayLength() == 0)
            throw OpenAiError.BadField("messages", "messages must be a non-empty array of {role, content} objects.");
        var result = new List<ChatMessage>();
        int i = 0;
        foreach (JsonElement message in messages.EnumerateArray())
        {
            string at = $"messages[{i++}]";
            if (message.ValueKind != JsonValueKind.Object) throw OpenAiError.BadField(at, $"{at} must be an object with a role and content.");
            ChatRole role = (String(message, "role", $"{at}.role") ?? throw OpenAiError.BadField($"{at}.role", $"{at}.role is missing.")) switch
            {
                "system" or "developer" => ChatRole.System,
                "user" => ChatRole.User,
                "assistant" => ChatRole.Assistant,
                var other => throw OpenAiError.BadField($"{at}.role", $"{at}.role '{other}': the model reads system, developer, user and assistant turns only (no tools)."),
            };
            if (Get(message, "tool_calls") is { ValueKind: JsonValueKind.Array } calls && calls.GetArrayLength() > 0)
                throw OpenAiError.BadField($"{at}.tool_calls", $"{at}.tool_calls: the model cannot call tools.");
            result.Add(new ChatMessage(role, ContentOf(Get(message, "content"), $"{at}.content")));
        }

        return result;
    }

    /// <summary>A message's text: a string, null, or an array of text parts (any other part is refused).</summary>
    private static string ContentOf(JsonElement? content, string at)
    {
        if (content is not { } c || c.ValueKind == JsonValueKind.Null) return "";
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind != JsonValueKind.Array) throw OpenAiError.BadField(at, $"{at} must be a string or an array of text parts.");
        var text = new System.Text.StringBuilder();
        int j = 0;
        foreach (JsonElement part in c.EnumerateArray())
        {
            string partAt = $"{at}[{j++}]";
            string? type = part.ValueKind == JsonValueKind.Object ? String(part, "type", $"{partAt}.type") : null;
            if (type != "text") throw OpenAiError.BadField(partAt, $"{partAt} is a '{type ?? part.ValueKind.ToString()}' part: the model reads text only (no images, audio or files).");
            text.Append(String(part, "text", $"{partAt}.text") ?? throw OpenAiError.BadField($"{partAt}.text", $"{partAt}.text is missing."));
        }

        return text.ToString();
    }

    private static string ParsePrompt(JsonElement prompt)
    {
        if (prompt.ValueKind == JsonValueKind.String) return prompt.GetString()!;
        if (prompt.ValueKind == JsonValueKind.Array && prompt.GetArrayLength() == 1 && prompt[0].ValueKind == JsonValueKind.String) return prompt[0].GetString()!;
        throw OpenAiError.BadField("prompt", "prompt must be a string (or an array of one string); token-id prompts and batches are not supported.");
    }

    private static List<string>? Stops(JsonElement root)
    {
        if (Get(root, "stop") is not { } stop) return null;
        List<string> stops = stop.ValueKind switch
        {
            JsonValueKind.String => [stop.GetString()!],
            JsonValueKind.Array => stop.EnumerateArray().Select(s => s.ValueKind == JsonValueKind.String ? s.GetString()! : throw OpenAiError.BadField("stop", "stop must be a string or an array of strings.")).ToList(),
            _ => throw OpenAiError.BadField("stop", "stop must be a string or an array of strings."),
        };
        if (stops.Count > MaxStopSequences) throw OpenAiError.BadField("stop", $"stop has {stops.Count} sequences; at most {MaxStopSequences} are accepted.");
        return stops;
    }

    private static JsonElement Required(JsonElement root, string name) =>
        Get(root, name) ?? throw OpenAiError.BadField(name, $"{name} is required.");

    /// <summary>A field's value; null when absent or JSON null (OpenAI treats both as "not given").</summary>
    private static JsonElement? Get(JsonElement root, string name) =>
        root.TryGetProperty(name, out JsonElement value) && value.ValueKind != JsonValueKind.Null ? value : null;

    private static string? String(JsonElement root, string name, string? path = null) => Get(root, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        _ => throw OpenAiError.BadField(path ?? name, $"{path ?? name} must be a string."),
    };

    private static bool? Bool(JsonElement root, string name, string? path = null) => Get(root, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        _ => throw OpenAiError.BadField(path ?? name, $"{path ?? name} must be true or false."),
    };

    private static long? Long(JsonElement root, string name) => Get(root, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Number } v when v.TryGetInt64(out long l) => l,
        _ => throw OpenAiError.BadField(name, $"{name} must be an integer."),
    };

    private static int? Int(JsonElement root, string name) => Long(root, name) switch
    {
        null => null,
        >= int.MinValue and <= int.MaxValue and var l => (int)l,
        var l => throw OpenAiError.BadField(name, $"{name} = {l} is out of range."),
    };

    private static float? Float(JsonElement root, string name) => Get(root, name) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Number } v => (float)v.GetDouble(),
        _ => throw OpenAiError.BadField(name, $"{name} must be a number."),
    };
}
