using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.DependencyInjection;

namespace YingHub.Moe.Extensions.AI.Tests;

/// <summary><c>AddYingHubMoeChatClient</c>: one singleton client over a checkpoint on disk, options validated by name.</summary>
public sealed class DependencyInjectionTests : IDisposable
{
    private readonly TinyModel _tiny = new();
    private readonly string _directory = Directory.CreateTempSubdirectory("yinghub-chat-di-").FullName;

    public void Dispose()
    {
        _tiny.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task The_registered_client_loads_the_checkpoint_once_and_answers_as_the_generator_does()
    {
        string checkpoint = _tiny.Save(_directory);
        var services = new ServiceCollection().AddLogging().AddYingHubMoeChatClient(checkpoint, o => o.DefaultMaxOutputTokens = 9);
        await using var provider = services.BuildServiceProvider();
        var chat = provider.GetRequiredService<IChatClient>();
        Assert.Same(provider.GetRequiredService<YingHubMoeChatClient>(), chat);
        Assert.Equal("tiny-chat", chat.GetService<ChatClientMetadata>()!.DefaultModelId); // the directory's name

        var response = await chat.GetResponseAsync("Hi", new ChatOptions { Temperature = 0 });
        string expected = _tiny.Generate("User: Hi\nAssistant:", new SamplingOptions { Greedy = true, MaxNewTokens = 9 }, PlainTextChatTemplate.StopSequences);
        Assert.Equal(expected, response.Text);
    }

    [Fact]
    public void Bad_options_are_refused_at_start_naming_the_field()
    {
        var services = new ServiceCollection().AddYingHubMoeChatClient(_directory, o => o.MaxQueuedRequests = -1);
        using var provider = services.BuildServiceProvider();
        var error = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<YingHubMoeChatClientOptions>>().Value);
        Assert.Contains("MaxQueuedRequests = -1", error.Message);

        using var none = new ServiceCollection().AddYingHubMoeChatClient(_ => { }).BuildServiceProvider();
        Assert.Contains("CheckpointDirectory is required",
            Assert.Throws<OptionsValidationException>(() => none.GetRequiredService<IOptions<YingHubMoeChatClientOptions>>().Value).Message);
    }
}
