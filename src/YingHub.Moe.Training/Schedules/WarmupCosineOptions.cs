using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Schedules;

/// <summary>Options of <see cref="WarmupCosineSchedule"/>: linear warmup, then one cosine decay to a minimum.</summary>
public sealed class WarmupCosineOptions : IValidatableOptions
{
    /// <summary>The rate reached at the end of warmup and at the start of the decay; finite, &gt; 0.</summary>
    public double PeakLearningRate { get; set; } = 1e-3;

    /// <summary>The rate at the end of the decay and after it; finite, in [0, <see cref="PeakLearningRate"/>].</summary>
    public double MinLearningRate { get; set; }

    /// <summary>Warmup steps (0 disables warmup); in [0, <see cref="TotalSteps"/>).</summary>
    public long WarmupSteps { get; set; }

    /// <summary>The step at which the decay reaches <see cref="MinLearningRate"/>, counted from step 0 (warmup included); &gt; <see cref="WarmupSteps"/>.</summary>
    public long TotalSteps { get; set; } = 1;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(double.IsFinite(PeakLearningRate) && PeakLearningRate > 0, nameof(PeakLearningRate), PeakLearningRate, "finite and > 0");
        errors.Require(double.IsFinite(MinLearningRate) && MinLearningRate >= 0 && MinLearningRate <= PeakLearningRate,
            nameof(MinLearningRate), MinLearningRate, $"finite, in [0, PeakLearningRate = {PeakLearningRate}]");
        errors.Require(WarmupSteps >= 0, nameof(WarmupSteps), WarmupSteps, ">= 0");
        errors.Require(TotalSteps > WarmupSteps && TotalSteps > 0, nameof(TotalSteps), TotalSteps, $"> WarmupSteps = {WarmupSteps} and > 0");
        return errors;
    }
}
