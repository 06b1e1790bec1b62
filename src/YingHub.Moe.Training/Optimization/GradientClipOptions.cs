using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Optimization;

/// <summary>
/// Options of <see cref="GroupedGradientClipper"/>. The defaults are YingHub-v2's: router 0.5, experts 2.0, everything
/// else 1.0 (the global norm is passed per step, see <c>YingHubV2Schedules.GlobalClipNorm</c>).
/// </summary>
public sealed class GradientClipOptions : IValidatableOptions
{
    /// <summary>YingHub-v2's router max norm.</summary>
    public const double DefaultRouterMaxNorm = 0.5;

    /// <summary>YingHub-v2's expert max norm.</summary>
    public const double DefaultExpertMaxNorm = 2.0;

    /// <summary>YingHub-v2's max norm for all other parameters.</summary>
    public const double DefaultOtherMaxNorm = 1.0;

    /// <summary>The named groups, matched in order (first match wins).</summary>
    public List<GradientClipGroup> Groups { get; set; } =
    [
        new() { Name = ParameterNamePatterns.RouterGroup, NameContains = [.. ParameterNamePatterns.Router], MaxNorm = DefaultRouterMaxNorm },
        new() { Name = ParameterNamePatterns.ExpertGroup, NameContains = [.. ParameterNamePatterns.Experts], MaxNorm = DefaultExpertMaxNorm },
    ];

    /// <summary>Max norm of the parameters no group matches (the <see cref="ParameterNamePatterns.OtherGroup"/> group); &gt; 0.</summary>
    public double OtherMaxNorm { get; set; } = DefaultOtherMaxNorm;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Groups is not null, nameof(Groups), Groups, "a list (possibly empty)");
        errors.Require(OtherMaxNorm > 0, nameof(OtherMaxNorm), OtherMaxNorm, "> 0 (+infinity disables)");
        var seen = new HashSet<string>(StringComparer.Ordinal) { ParameterNamePatterns.OtherGroup };
        for (int i = 0; i < (Groups?.Count ?? 0); i++)
        {
            GradientClipGroup g = Groups![i];
            string field = $"{nameof(Groups)}[{i}]";
            errors.Require(g is not null, field, null, "a group");
            if (g is null) continue;
            errors.Require(!string.IsNullOrWhiteSpace(g.Name) && seen.Add(g.Name), $"{field}.{nameof(g.Name)}", g.Name,
                $"a non-empty name, unique, not '{ParameterNamePatterns.OtherGroup}'");
            errors.Require(g.NameContains is { Count: > 0 } && g.NameContains.All(p => !string.IsNullOrEmpty(p)),
                $"{field}.{nameof(g.NameContains)}", g.NameContains is null ? null : string.Join(",", g.NameContains), "at least one non-empty fragment");
            errors.Require(g.MaxNorm > 0, $"{field}.{nameof(g.MaxNorm)}", g.MaxNorm, "> 0 (+infinity disables)");
        }

        return errors;
    }
}
