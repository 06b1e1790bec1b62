using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;

namespace YingHub.Moe.DependencyInjection;

/// <summary>Registers YingHub.Moe with a <see cref="IServiceCollection"/>.</summary>
public static class ServiceCollectionExtensions
{
    /// <summary>
    /// Binds <see cref="MoeModelOptions"/> to <paramref name="section"/> (property names as keys, e.g.
    /// <c>"Moe": { "HiddenSize": 192, "NumExperts": 6 }</c>; a <c>Preset</c> key picks the starting point),
    /// validates it at start-up and registers an <see cref="IMoeModelFactory"/>.
    /// </summary>
    public static IServiceCollection AddYingHubMoe(this IServiceCollection services, IConfiguration section)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(section);
        string? preset = section["Preset"];
        return services.AddYingHubMoe(options =>
        {
            if (preset is not null) Copy(MoePresets.Get(preset), options);
            section.Bind(options);
        });
    }

    /// <summary>Configures <see cref="MoeModelOptions"/> in code, validates it at start-up and registers an <see cref="IMoeModelFactory"/>.</summary>
    public static IServiceCollection AddYingHubMoe(this IServiceCollection services, Action<MoeModelOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.AddOptions<MoeModelOptions>().Configure(configure).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MoeModelOptions>, ValidatableOptionsValidator<MoeModelOptions>>());
        services.TryAddSingleton<IMoeModelFactory, MoeModelFactory>();
        return services;
    }

    private static void Copy(MoeModelOptions from, MoeModelOptions to)
    {
        foreach (var property in typeof(MoeModelOptions).GetProperties().Where(p => p.CanRead && p.CanWrite))
            property.SetValue(to, property.GetValue(from));
    }
}

/// <summary>Creates models from the registered, validated <see cref="MoeModelOptions"/>.</summary>
public interface IMoeModelFactory
{
    /// <summary>The validated options models are built from.</summary>
    MoeModelOptions Options { get; }

    /// <summary>A new model with freshly initialised weights.</summary>
    MoeForCausalLM Create();
}

internal sealed class MoeModelFactory(IOptions<MoeModelOptions> options, ILogger<MoeModelFactory>? logger = null) : IMoeModelFactory
{
    private readonly ILogger _logger = logger ?? NullLogger<MoeModelFactory>.Instance;

    public MoeModelOptions Options => options.Value;

    public MoeForCausalLM Create()
    {
        var model = new MoeForCausalLM(options.Value);
        _logger.LogInformation("Built a MoE model: {Layers} layers, {Experts} experts top-{TopK}, {Total:N0} parameters ({Active:N0} active per token)",
            options.Value.NumLayers, options.Value.NumExperts, options.Value.TopK, model.ParameterCount, model.ActiveParameterCount);
        return model;
    }
}
