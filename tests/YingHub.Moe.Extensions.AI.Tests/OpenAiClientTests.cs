using System.ClientModel;
using System.Text.Json;
using Microsoft.Extensions.AI;
using OpenAI;
using YingHub.Moe.Core.Generation;

namespace YingHub.Moe.Extensions.AI.Tests;

/// <summary>
/// <c>yinghub serve</c> through the official OpenAI .NET client (behind <c>Microsoft.Extensions.AI.OpenAI</c>'s
/// <see cref="IChatClient"/>) and, for the legacy completions endpoint the client no longer has, raw HTTP: every
/// text equals what <see cref="TextGenerator"/> writes for the same prompt, options and seed.
/// </summary>
public sealed class OpenAiClientTests : IAsyncLifetime
{
    private const string Key = "test-key";
    private static readonly string[] TemplateStops = ["\nUser:", "\nSystem:", "\nAssistant:"];
    private readonly TinyModel _tiny = new();
    private RunningServer _server = null!;

    public async Task InitializeAsync() => _server = await RunningServer.StartAsync(_tiny, Key);

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _tiny.Dispose();
    }

    private IChatClient OpenAi() =>
        new OpenAIClient(new ApiKeyCredential(Key), new OpenAIClientOptions { Endpoint = new Uri(_server.Address + "/v1") })
            .GetChatClient(RunningServer.ModelId).AsIChatClient();

    private static readonly ChatMessage[] Chat = [new(ChatRole.System, "Answer in verse."), new(ChatRole.User, "Where is the king?")];
    private const string ChatPrompt = "System: Answer in verse.\nUser: Where is the king?\nAssistant:";

    [Fact]
    public async Task A_greedy_chat_equals_the_text_generator_s_with_usage_and_finish_reason()
    {
        using var client = OpenAi();
        var response = await client.GetResponseAsync(Chat, new ChatOptions { Temperature = 0, MaxOutputTokens = 24 });
        string expected = _tiny.Generate(ChatPrompt, new SamplingOptions { Greedy = true, MaxNewTokens = 24 }, TemplateStops);
        Assert.Equal(expected, response.Text);
        Assert.Equal(ChatPrompt.Length, response.Usage!.InputTokenCount);
        Assert.Equal(expected.Length < 24 ? ChatFinishReason.Stop : ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(RunningServer.ModelId, response.ModelId);
    }

    [Fact]
    public async Task A_streamed_seeded_chat_equals_the_text_generator_s()
    {
        using var client = OpenAi();
        var options = new ChatOptions { Temperature = 0.75f, TopP = 0.875f, Seed = 3, MaxOutputTokens = 20 };
        string expected = _tiny.Generate(ChatPrompt, new SamplingOptions { Temperature = 0.75, TopP = 0.875, Seed = 3, MaxNewTokens = 20 }, TemplateStops);
        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync(Chat, options)) updates.Add(update);
        Assert.Equal(expected, string.Concat(updates.Select(u => u.Text)));
        var response = updates.ToChatResponse();
        Assert.Equal(expected.Length < 20 ? ChatFinishReason.Stop : ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(ChatPrompt.Length, response.Usage?.InputTokenCount);
    }

    [Fact]
    public async Task Completions_plain_and_streamed_equal_the_text_generator_s()
    {
        string expected = _tiny.Generate("the king ", new SamplingOptions { Temperature = 0.5, TopK = 9, Seed = 21, MaxNewTokens = 18 });
        const string Body = """{"model":"tiny-chat","prompt":"the king ","max_tokens":18,"temperature":0.5,"top_k":9,"seed":21""";

        var (status, body) = await _server.PostAsync("/v1/completions", Body + "}");
        Assert.Equal(200, status);
        Assert.Equal("text_completion", body.GetProperty("object").GetString());
        var choice = Assert.Single(body.GetProperty("choices").EnumerateArray());
        Assert.Equal(expected, choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(("the king ".Length, 18), (body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), body.GetProperty("usage").GetProperty("completion_tokens").GetInt32()));

        var (events, done) = await _server.StreamAsync("/v1/completions", Body + ""","stream":true,"stream_options":{"include_usage":true}}""");
        Assert.True(done);
        var choices = events.Where(e => e.GetProperty("choices").GetArrayLength() > 0).Select(e => e.GetProperty("choices")[0]).ToList();
        Assert.Equal(expected, string.Concat(choices.Select(c => c.GetProperty("text").GetString())));
        Assert.Equal("length", choices[^1].GetProperty("finish_reason").GetString());
        Assert.All(choices.SkipLast(1), c => Assert.Equal(JsonValueKind.Null, c.GetProperty("finish_reason").ValueKind));
        Assert.Equal(18, events[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32()); // the usage chunk comes last
    }

    [Fact]
    public async Task A_raw_streamed_chat_opens_with_the_role_and_ends_with_done()
    {
        var (events, done) = await _server.StreamAsync("/v1/chat/completions",
            """{"messages":[{"role":"user","content":[{"type":"text","text":"Where is "},{"type":"text","text":"the king?"}]}],"max_tokens":6,"temperature":0,"stream":true}""");
        Assert.True(done);
        Assert.All(events, e => Assert.Equal("chat.completion.chunk", e.GetProperty("object").GetString()));
        Assert.Equal("assistant", events[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        string text = string.Concat(events.Select(e => e.GetProperty("choices")[0].GetProperty("delta"))
            .Select(d => d.TryGetProperty("content", out var c) ? c.GetString() : ""));
        Assert.Equal(_tiny.Generate("User: Where is the king?\nAssistant:", new SamplingOptions { Greedy = true, MaxNewTokens = 6 }, TemplateStops), text);
        Assert.Single(events.Select(e => e.GetProperty("id").GetString()).Distinct()); // one id per answer
    }

    [Fact]
    public async Task Sixteen_concurrent_streamed_chats_each_equal_their_sequential_result()
    {
        var messages = Enumerable.Range(0, 16).Select(i => new ChatMessage[] { new(ChatRole.User, $"Song {i} of the sea") }).ToArray();
        string[] sequential = Enumerable.Range(0, 16).Select(i => _tiny.Generate($"User: Song {i} of the sea\nAssistant:",
            new SamplingOptions { Temperature = 1, Seed = 40 + i, MaxNewTokens = 10 + i % 4 }, TemplateStops)).ToArray();
        var concurrent = await Task.WhenAll(messages.Select(async (m, i) =>
        {
            using var client = OpenAi();
            var text = new System.Text.StringBuilder();
            await foreach (var update in client.GetStreamingResponseAsync(m, new ChatOptions { Temperature = 1, Seed = 40 + i, MaxOutputTokens = 10 + i % 4 }))
                text.Append(update.Text);
            return text.ToString();
        }));
        Assert.Equal(sequential, concurrent);
    }

    [Fact]
    public async Task The_models_endpoint_lists_the_served_model()
    {
        var models = new OpenAIClient(new ApiKeyCredential(Key), new OpenAIClientOptions { Endpoint = new Uri(_server.Address + "/v1") }).GetOpenAIModelClient();
        var listed = (await models.GetModelsAsync()).Value;
        Assert.Equal(RunningServer.ModelId, Assert.Single(listed).Id);
        Assert.Equal(RunningServer.ModelId, (await models.GetModelAsync(RunningServer.ModelId)).Value.Id);
    }
}
