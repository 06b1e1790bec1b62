using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Optimization;

/// <summary>Options of <see cref="EarlyStopping"/>.</summary>
public sealed class EarlyStoppingOptions : IValidatableOptions
{
    /// <summary>Evaluations without improvement after which training stops; &gt;= 1.</summary>
    public int Patience { get; set; } = 5;

    /// <summary>An evaluation improves when its loss is below <c>best − MinDelta</c>; finite, &gt;= 0.</summary>
    public double MinDelta { get; set; }

    /// <summary>Whether the trainer should restore the best weights when it stops early.</summary>
    public bool RestoreBestWeights { get; set; } = true;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Patience >= 1, nameof(Patience), Patience, ">= 1");
        errors.Require(double.IsFinite(MinDelta) && MinDelta >= 0, nameof(MinDelta), MinDelta, "finite and >= 0");
        return errors;
    }
}
