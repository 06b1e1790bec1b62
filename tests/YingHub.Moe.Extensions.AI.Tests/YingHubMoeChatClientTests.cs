using Microsoft.Extensions.AI;
using YingHub.Moe.Core.Generation;

namespace YingHub.Moe.Extensions.AI.Tests;

/// <summary>
/// The IChatClient against <see cref="TextGenerator"/> on the prompt written out by hand: the template, the option
/// mapping, usage, finish reasons, refusals, cancellation and one request at a time per model.
/// </summary>
public sealed class YingHubMoeChatClientTests : IDisposable
{
    private readonly TinyModel _tiny = new();
    private readonly YingHubMoeChatClient _client;

    public YingHubMoeChatClientTests() => _client = new YingHubMoeChatClient(_tiny.Model, _tiny.Tokenizer);

    public void Dispose()
    {
        _client.Dispose();
        _tiny.Dispose();
    }

    private static readonly ChatMessage[] Conversation =
    [
        new(ChatRole.System, "Be brief."), new(ChatRole.User, "Hi"), new(ChatRole.Assistant, "Hello"), new(ChatRole.User, "Sing"),
    ];

    /// <summary>The template of <see cref="Conversation"/>, written out by hand.</summary>
    private const string ConversationPrompt = "System: Be brief.\nUser: Hi\nAssistant: Hello\nUser: Sing\nAssistant:";

    private static readonly string[] TemplateStops = ["\nUser:", "\nSystem:", "\nAssistant:"];

    [Fact]
    public void The_template_lays_out_one_labelled_line_per_turn_and_opens_the_assistant_turn()
    {
        Assert.Equal(ConversationPrompt, _client.FormatPrompt(Conversation));
        Assert.Equal("System: Rhyme.\n" + ConversationPrompt, _client.FormatPrompt(Conversation, new ChatOptions { Instructions = "Rhyme." }));
        Assert.Equal(TemplateStops, PlainTextChatTemplate.StopSequences);
    }

    [Fact]
    public async Task A_greedy_chat_is_what_the_text_generator_writes_for_the_template_with_usage_and_finish_reason()
    {
        var response = await _client.GetResponseAsync(Conversation, new ChatOptions { Temperature = 0, MaxOutputTokens = 30 });
        string expected = _tiny.Generate(ConversationPrompt, new SamplingOptions { Greedy = true, MaxNewTokens = 30 }, TemplateStops);
        Assert.Equal(expected, response.Text);
        Assert.Equal(ConversationPrompt.Length, response.Usage!.InputTokenCount); // one token per character
        bool stopped = expected.Length < 30; // a template stop ends it early; its own tokens count as generated
        Assert.Equal(stopped ? ChatFinishReason.Stop : ChatFinishReason.Length, response.FinishReason);
        if (!stopped) Assert.Equal(30, response.Usage.OutputTokenCount);
        Assert.Equal(response.Usage.InputTokenCount + response.Usage.OutputTokenCount, response.Usage.TotalTokenCount);
        Assert.Equal(ChatRole.Assistant, Assert.Single(response.Messages).Role);
        Assert.Equal("yinghub-moe", response.ModelId);
    }

    [Theory]
    [InlineData(0f, 0f)]
    [InlineData(3f, 0f)] // each penalty alone: together the first repeated token is penalised by either one
    [InlineData(0f, 3f)]
    public async Task Sampling_options_map_onto_the_generator_s_and_streaming_gives_the_same_text(float presence, float frequency)
    {
        // values exact in float, as ChatOptions holds them
        var options = new ChatOptions { Temperature = 0.75f, TopP = 0.875f, TopK = 7, Seed = 11, PresencePenalty = presence, FrequencyPenalty = frequency, MaxOutputTokens = 25 };
        var sampling = new SamplingOptions { Temperature = 0.75, TopP = 0.875, TopK = 7, Seed = 11, PresencePenalty = presence, FrequencyPenalty = frequency, MaxNewTokens = 25 };
        string expected = _tiny.Generate("the king ", sampling);
        Assert.Equal(expected, (await _client.GetCompletionAsync("the king ", options)).Text);

        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in _client.GetStreamingCompletionAsync("the king ", options)) updates.Add(update);
        Assert.Equal(expected, string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(ChatFinishReason.Length, updates[^1].FinishReason);
        var usage = Assert.IsType<UsageContent>(Assert.Single(updates[^1].Contents)).Details;
        Assert.Equal(("the king ".Length, 25), (usage.InputTokenCount, usage.OutputTokenCount));
        Assert.Empty(updates[0].Contents); // the first update says the model is ours
        Assert.Equal(ChatRole.Assistant, updates[0].Role);
    }

    [Fact]
    public async Task A_stop_sequence_ends_the_text_before_it_with_finish_reason_stop()
    {
        var greedy = new SamplingOptions { Greedy = true, MaxNewTokens = 40 };
        string full = _tiny.Generate("a song", greedy);
        string stop = full.Substring(12, 2);
        int at = full.IndexOf(stop, StringComparison.Ordinal);
        var response = await _client.GetCompletionAsync("a song", new ChatOptions { Temperature = 0, MaxOutputTokens = 40, StopSequences = [stop] });
        Assert.Equal(full[..at], response.Text);
        Assert.Equal(ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal(at + stop.Length, response.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task Without_the_template_the_messages_are_one_plain_prompt()
    {
        using var plain = new YingHubMoeChatClient(_tiny.Model, _tiny.Tokenizer, new YingHubMoeChatClientOptions { UseChatTemplate = false });
        var response = await plain.GetResponseAsync([new ChatMessage(ChatRole.User, "ROMEO:")], new ChatOptions { Temperature = 0, MaxOutputTokens = 20 });
        Assert.Equal(_tiny.Generate("ROMEO:", new SamplingOptions { Greedy = true, MaxNewTokens = 20 }), response.Text);
        Assert.Equal("a\nb", plain.FormatPrompt([new ChatMessage(ChatRole.User, "b")], new ChatOptions { Instructions = "a" }));
    }

    public static TheoryData<string, ChatOptions> OutOfRange => new()
    {
        { nameof(ChatOptions.Temperature), new ChatOptions { Temperature = -0.5f } },
        { nameof(ChatOptions.Temperature), new ChatOptions { Temperature = float.NaN } },
        { nameof(ChatOptions.TopP), new ChatOptions { TopP = 0 } },
        { nameof(ChatOptions.TopK), new ChatOptions { TopK = 0 } },
        { nameof(ChatOptions.MaxOutputTokens), new ChatOptions { MaxOutputTokens = 0 } },
        { nameof(ChatOptions.MaxOutputTokens), new ChatOptions { MaxOutputTokens = 4097 } },
        { nameof(ChatOptions.FrequencyPenalty), new ChatOptions { FrequencyPenalty = -1 } },
        { nameof(ChatOptions.PresencePenalty), new ChatOptions { PresencePenalty = 101 } },
        { nameof(ChatOptions.StopSequences), new ChatOptions { StopSequences = [""] } },
        { nameof(ChatOptions.ModelId), new ChatOptions { ModelId = "gpt-4o" } },
    };

    [Theory]
    [MemberData(nameof(OutOfRange))]
    public void A_value_out_of_range_is_refused_naming_the_option(string field, ChatOptions options)
    {
        var error = Assert.Throws<ArgumentException>(() => _client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Hi")], options));
        Assert.Equal(field, error.ParamName);
        Assert.Contains($"ChatOptions.{field}", error.Message);
    }

    [Fact]
    public void What_the_model_cannot_do_is_not_supported()
    {
        var hi = new[] { new ChatMessage(ChatRole.User, "Hi") };
        Assert.Throws<NotSupportedException>(() => _client.GetStreamingResponseAsync(hi, new ChatOptions { Tools = [AIFunctionFactory.Create(() => 1, "one")] }));
        Assert.Throws<NotSupportedException>(() => _client.GetStreamingResponseAsync(hi, new ChatOptions { ResponseFormat = ChatResponseFormat.Json }));
        Assert.Throws<NotSupportedException>(() => _client.GetStreamingResponseAsync(hi, new ChatOptions { ConversationId = "c1" }));
        var image = new ChatMessage(ChatRole.User, [new TextContent("What is this?"), new DataContent(new byte[] { 1, 2, 3 }, "image/png")]);
        Assert.Contains("DataContent", Assert.Throws<NotSupportedException>(() => _client.GetStreamingResponseAsync([image])).Message);
        Assert.Throws<NotSupportedException>(() => _client.GetStreamingResponseAsync([new ChatMessage(ChatRole.Tool, "42")]));
        var call = new ChatMessage(ChatRole.Assistant, [new FunctionCallContent("1", "one")]);
        Assert.Contains("tools", Assert.Throws<NotSupportedException>(() => _client.GetStreamingResponseAsync([call])).Message);
    }

    [Fact]
    public void Prompts_too_long_empty_or_outside_the_vocabulary_are_refused()
    {
        var tooLong = Assert.Throws<PromptTooLongException>(() => _client.GetStreamingCompletionAsync(new string('a', TinyModel.ContextLength + 1)));
        Assert.Equal((TinyModel.ContextLength + 1, TinyModel.ContextLength), (tooLong.PromptTokens, tooLong.Limit));
        Assert.Equal("prompt", Assert.Throws<ArgumentException>(() => _client.GetStreamingCompletionAsync("")).ParamName);
        var error = Assert.Throws<ArgumentException>(() => _client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "caf\u00e9")]));
        Assert.Equal("messages", error.ParamName);
        Assert.Contains("U+00E9", error.Message);
        using var shortPrompts = new YingHubMoeChatClient(_tiny.Model, _tiny.Tokenizer, new YingHubMoeChatClientOptions { MaxPromptTokens = 4 });
        Assert.Throws<PromptTooLongException>(() => shortPrompts.GetStreamingCompletionAsync("abcde"));
    }

    [Fact]
    public async Task Cancellation_stops_between_tokens_and_frees_the_model()
    {
        using var cancel = new CancellationTokenSource();
        var texts = new List<string>();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var update in _client.GetStreamingCompletionAsync("the sea", new ChatOptions { MaxOutputTokens = 200, Seed = 1 }, cancel.Token))
            {
                if (update.Text.Length > 0) texts.Add(update.Text);
                if (texts.Count == 3) cancel.Cancel();
            }
        });
        Assert.Equal(3, texts.Count);
        // the model is free again: a request that may not queue gets it at once
        using var noQueue = new YingHubMoeChatClient(_tiny.Model, _tiny.Tokenizer, new YingHubMoeChatClientOptions { MaxQueuedRequests = 0 });
        Assert.Equal(ChatFinishReason.Length, (await noQueue.GetCompletionAsync("the sea", new ChatOptions { MaxOutputTokens = 2 })).FinishReason);
    }

    [Fact]
    public async Task One_request_holds_the_model_and_a_full_queue_is_refused_as_busy()
    {
        using var noQueue = new YingHubMoeChatClient(_tiny.Model, _tiny.Tokenizer, new YingHubMoeChatClientOptions { MaxQueuedRequests = 0 });
        await using (var holder = _client.GetStreamingCompletionAsync("the", new ChatOptions { MaxOutputTokens = 50 }).GetAsyncEnumerator())
        {
            Assert.True(await holder.MoveNextAsync()); // the model is the holder's now
            // the gate belongs to the model: another client over it must wait too, and may not
            await using var refused = noQueue.GetStreamingCompletionAsync("the").GetAsyncEnumerator();
            // a bounded wait: were the request queued instead of refused, it would wait for the holder forever
            var busy = await Assert.ThrowsAsync<ModelBusyException>(async () => await refused.MoveNextAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(60)));
            Assert.Equal(0, busy.Queued);
        }

        Assert.NotNull((await noQueue.GetCompletionAsync("the", new ChatOptions { MaxOutputTokens = 2 })).Text);
    }

    [Fact]
    public async Task Sixteen_parallel_requests_each_equal_their_sequential_result()
    {
        var prompts = Enumerable.Range(0, 16).Select(i => $"{i} the king").ToArray();
        var options = prompts.Select((_, i) => new ChatOptions { Temperature = 1, TopK = 10, Seed = 100 + i, MaxOutputTokens = 12 + i % 5 }).ToArray();
        string[] sequential = prompts.Select((p, i) => _tiny.Generate(p, new SamplingOptions { TopK = 10, Seed = 100 + i, MaxNewTokens = 12 + i % 5 })).ToArray();
        var parallel = await Task.WhenAll(prompts.Select(async (p, i) =>
        {
            var text = new System.Text.StringBuilder();
            await foreach (var update in _client.GetStreamingCompletionAsync(p, options[i])) text.Append(update.Text);
            return text.ToString();
        }));
        Assert.Equal(sequential, parallel);
    }

    [Fact]
    public void The_client_reports_its_metadata_and_serves_its_model_and_tokenizer()
    {
        var metadata = Assert.IsType<ChatClientMetadata>(_client.GetService(typeof(ChatClientMetadata)));
        Assert.Equal((YingHubMoeChatClient.ProviderName, "yinghub-moe"), (metadata.ProviderName, metadata.DefaultModelId));
        Assert.Same(_tiny.Model, _client.GetService(typeof(YingHub.Moe.Core.Modules.MoeForCausalLM)));
        Assert.Same(_tiny.Tokenizer, _client.GetService(typeof(YingHub.Moe.Core.Tokenizers.ITextTokenizer)));
        Assert.Same(_client, _client.GetService(typeof(IChatClient)));
        Assert.Null(_client.GetService(typeof(IChatClient), "key"));
        var error = Assert.Throws<ArgumentException>(() => new YingHubMoeChatClient(_tiny.Model, _tiny.Tokenizer, new YingHubMoeChatClientOptions { DefaultMaxOutputTokens = 0 }));
        Assert.Contains("DefaultMaxOutputTokens = 0", error.Message);
    }
}
