using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>Settings of a <see cref="CentroidRouter"/>.</summary>
public sealed class CentroidRouterOptions : IValidatableOptions
{
    /// <summary>Adapters per selection: 1 takes the nearest centroid's adapter, k mixes the k nearest; [1, 1024] and at most the number of adapters.</summary>
    public int TopK { get; set; } = 1;

    /// <summary>The logits are cosine / <see cref="Temperature"/>, so the mixing weights are softmax(cosine / T) over the top k; finite and &gt; 0.</summary>
    public double Temperature { get; set; } = 0.1;

    /// <summary>Every problem, naming the field, its value and the allowed range.</summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(TopK is >= 1 and <= 1024, nameof(TopK), TopK, "[1, 1024]");
        errors.Require(double.IsFinite(Temperature) && Temperature > 0, nameof(Temperature), Temperature, "finite and > 0");
        return errors;
    }
}
