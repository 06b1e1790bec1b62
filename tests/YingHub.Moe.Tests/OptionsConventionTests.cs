using System.Reflection;
using YingHub.Moe.Building;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Interop;
using YingHub.Moe.Rewards;
using YingHub.Moe.Training;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Routing;

namespace YingHub.Moe.Tests;

/// <summary>
/// One validation idiom across the five packages: every options class implements <see cref="IValidatableOptions"/>,
/// lists its problems with <see cref="IValidatableOptions.GetValidationErrors"/> and has no other validation method.
/// </summary>
public class OptionsConventionTests
{
    private static readonly Assembly[] Packages =
    [
        typeof(MoeModelOptions).Assembly,          // YingHub.Moe.Core
        typeof(TrainerOptions).Assembly,           // YingHub.Moe.Training
        typeof(ShakespeareRewardOptions).Assembly, // YingHub.Moe.Rewards
        Assembly.Load("YingHub.Moe.Rl"),
        typeof(MoeModelBuilder).Assembly,          // YingHub.Moe (the facade)
    ];

    private static Type[] PublicTypes() => Packages.SelectMany(a => a.GetExportedTypes()).ToArray();

    private static Type[] ValidatableTypes() =>
        PublicTypes().Where(t => t.IsClass && !t.IsAbstract && typeof(IValidatableOptions).IsAssignableFrom(t)).ToArray();

    [Fact]
    public void The_walk_covers_the_five_packages_and_finds_the_options_classes()
    {
        Assert.Equal(
            new[] { "YingHub.Moe", "YingHub.Moe.Core", "YingHub.Moe.Rewards", "YingHub.Moe.Rl", "YingHub.Moe.Training" },
            Packages.Select(a => a.GetName().Name).Order(StringComparer.Ordinal));
        Type[] found = ValidatableTypes();
        Assert.Subset(found.ToHashSet(), new HashSet<Type>
        {
            typeof(MoeModelOptions), typeof(SamplingOptions), typeof(Gpt2Config), typeof(ShakespeareRewardOptions),
            typeof(TrainerOptions), typeof(TopKControllerOptions), typeof(OptimizerStepOptions), typeof(AdamWGroupOptions),
        });
    }

    [Fact]
    public void Every_public_options_or_config_class_implements_IValidatableOptions()
    {
        string[] missing = PublicTypes()
            .Where(t => t.IsClass && !(t.IsAbstract && t.IsSealed) && (t.Name.EndsWith("Options", StringComparison.Ordinal) || t.Name.EndsWith("Config", StringComparison.Ordinal)))
            .Where(t => !typeof(IValidatableOptions).IsAssignableFrom(t))
            .Select(t => t.FullName!)
            .ToArray();
        Assert.Empty(missing);
    }

    [Fact]
    public void No_options_class_has_a_Validate_method_and_defaults_validate_clean()
    {
        var problems = new List<string>();
        foreach (Type type in ValidatableTypes())
        {
            const BindingFlags Any = BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static;
            problems.AddRange(type.GetMethods(Any).Where(m => m.Name == "Validate").Select(m => $"{type.FullName} has {m}"));
            if (type.GetConstructor(Type.EmptyTypes) is not { } constructor) continue;
            var options = (IValidatableOptions)constructor.Invoke(null);
            problems.AddRange(options.GetValidationErrors().Select(e => $"a default {type.FullName}: {e.Message}"));
        }

        Assert.Empty(problems);
    }
}
