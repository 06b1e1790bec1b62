using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Optimization;

/// <summary>Options of <see cref="DynamicLossScaler"/>; the defaults are PyTorch's <c>GradScaler</c>'s.</summary>
public sealed class DynamicLossScalerOptions : IValidatableOptions
{
    /// <summary>The first loss scale; finite, in [1, 2^32].</summary>
    public double InitialScale { get; set; } = 65536.0;

    /// <summary>Factor applied after <see cref="GrowthInterval"/> consecutive finite steps; finite, &gt; 1.</summary>
    public double GrowthFactor { get; set; } = 2.0;

    /// <summary>Factor applied when a step's gradients hold inf or NaN (the step is skipped); in (0, 1).</summary>
    public double BackoffFactor { get; set; } = 0.5;

    /// <summary>Consecutive finite steps before the scale grows; &gt;= 1.</summary>
    public int GrowthInterval { get; set; } = 2000;

    /// <summary>The scale never backs off below this; finite, in (0, InitialScale].</summary>
    public double MinScale { get; set; } = 1.0 / 65536;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(double.IsFinite(InitialScale) && InitialScale is >= 1 and <= 4294967296.0, nameof(InitialScale), InitialScale, "[1, 2^32]");
        errors.Require(double.IsFinite(GrowthFactor) && GrowthFactor > 1, nameof(GrowthFactor), GrowthFactor, "finite and > 1");
        errors.Require(BackoffFactor is > 0 and < 1, nameof(BackoffFactor), BackoffFactor, "(0, 1)");
        errors.Require(GrowthInterval >= 1, nameof(GrowthInterval), GrowthInterval, ">= 1");
        errors.Require(double.IsFinite(MinScale) && MinScale > 0 && MinScale <= InitialScale, nameof(MinScale), MinScale, $"(0, InitialScale = {InitialScale}]");
        return errors;
    }
}
