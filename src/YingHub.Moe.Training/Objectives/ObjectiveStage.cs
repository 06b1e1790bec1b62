using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Objectives;

/// <summary>From a point of training on, the weights with which each sequence draws its objective.</summary>
public sealed class ObjectiveStage : IValidatableOptions
{
    /// <summary>Where the stage starts, as a fraction of the run's steps; in [0, 1). The first stage starts at 0.</summary>
    public double From { get; set; }

    /// <summary>
    /// Objective name → relative weight (≥ 0; at least one above 0). Objectives left out have weight 0. Default: all on
    /// <c>causal</c> (the default objective's name).
    /// </summary>
    public Dictionary<string, double> Weights { get; set; } = new() { [ObjectiveMixtureOptions.CausalName] = 1 };

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(From is >= 0 and < 1, nameof(From), From, "[0, 1)");
        foreach (var (name, weight) in Weights)
            errors.Require(weight >= 0 && double.IsFinite(weight), $"{nameof(Weights)}.{name}", weight, ">= 0 and finite");
        errors.Require(Weights.Values.Any(w => w > 0), nameof(Weights), string.Join(", ", Weights.Select(p => $"{p.Key}: {p.Value}")), "at least one weight above 0");
        return errors;
    }

    /// <summary>A copy.</summary>
    public ObjectiveStage Clone() => new() { From = From, Weights = new Dictionary<string, double>(Weights) };
}
