using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Extensions.AI;

namespace YingHub.Moe.DependencyInjection;

/// <summary>Registers a <see cref="YingHubMoeChatClient"/> as the <see cref="IChatClient"/> of a <see cref="IServiceCollection"/> (beside <c>AddYingHubMoe</c>).</summary>
public static class ChatClientServiceCollectionExtensions
{
    /// <summary>
    /// Registers the checkpoint in <paramref name="checkpointDirectory"/> as a singleton <see cref="IChatClient"/> (and
    /// <see cref="YingHubMoeChatClient"/>), logging through the container's <see cref="ILogger{T}"/>. The options are
    /// validated at start-up; the checkpoint is loaded on first use and disposed with the container.
    /// </summary>
    public static IServiceCollection AddYingHubMoeChatClient(this IServiceCollection services, string checkpointDirectory,
        Action<YingHubMoeChatClientOptions>? configure = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(checkpointDirectory);
        return services.AddYingHubMoeChatClient(options =>
        {
            options.CheckpointDirectory = checkpointDirectory;
            configure?.Invoke(options);
        });
    }

    /// <summary>
    /// Registers a singleton <see cref="IChatClient"/> (and <see cref="YingHubMoeChatClient"/>) over the checkpoint in
    /// <see cref="YingHubMoeChatClientOptions.CheckpointDirectory"/>, which <paramref name="configure"/> must set.
    /// </summary>
    public static IServiceCollection AddYingHubMoeChatClient(this IServiceCollection services, Action<YingHubMoeChatClientOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<YingHubMoeChatClientOptions>().Configure(configure)
            .Validate(o => !string.IsNullOrWhiteSpace(o.CheckpointDirectory),
                $"{nameof(YingHubMoeChatClientOptions)}.{nameof(YingHubMoeChatClientOptions.CheckpointDirectory)} is required: the checkpoint to serve.")
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<YingHubMoeChatClientOptions>, ValidatableOptionsValidator<YingHubMoeChatClientOptions>>());
        services.TryAddSingleton(provider =>
        {
            var options = provider.GetRequiredService<IOptions<YingHubMoeChatClientOptions>>().Value;
            return YingHubMoeChatClient.FromCheckpoint(options.CheckpointDirectory!, options, provider.GetService<ILogger<YingHubMoeChatClient>>());
        });
        services.TryAddSingleton<IChatClient>(provider => provider.GetRequiredService<YingHubMoeChatClient>());
        return services;
    }
}
