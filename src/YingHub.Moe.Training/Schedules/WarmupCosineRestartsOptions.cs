using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Schedules;

/// <summary>
/// Options of <see cref="WarmupCosineRestartsSchedule"/>: linear warmup, then SGDR (PyTorch's
/// <c>CosineAnnealingWarmRestarts(T_0, T_mult, eta_min)</c>).
/// </summary>
public sealed class WarmupCosineRestartsOptions : IValidatableOptions
{
    /// <summary>The rate at the end of warmup and at the start of every cycle (PyTorch's base lr); finite, &gt; 0.</summary>
    public double PeakLearningRate { get; set; } = 1e-3;

    /// <summary>The floor of every cycle (<c>eta_min</c>); finite, in [0, <see cref="PeakLearningRate"/>].</summary>
    public double MinLearningRate { get; set; }

    /// <summary>Warmup steps before the first cycle (0 disables warmup); &gt;= 0.</summary>
    public long WarmupSteps { get; set; }

    /// <summary>Length of the first cycle in steps (<c>T_0</c>); &gt;= 1.</summary>
    public long FirstCycleSteps { get; set; } = 1000;

    /// <summary>Factor by which each cycle is longer than the previous one (<c>T_mult</c>, an integer as in PyTorch); &gt;= 1.</summary>
    public long CycleMultiplier { get; set; } = 1;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(double.IsFinite(PeakLearningRate) && PeakLearningRate > 0, nameof(PeakLearningRate), PeakLearningRate, "finite and > 0");
        errors.Require(double.IsFinite(MinLearningRate) && MinLearningRate >= 0 && MinLearningRate <= PeakLearningRate,
            nameof(MinLearningRate), MinLearningRate, $"finite, in [0, PeakLearningRate = {PeakLearningRate}]");
        errors.Require(WarmupSteps >= 0, nameof(WarmupSteps), WarmupSteps, ">= 0");
        errors.Require(FirstCycleSteps >= 1, nameof(FirstCycleSteps), FirstCycleSteps, ">= 1 (T_0)");
        errors.Require(CycleMultiplier >= 1, nameof(CycleMultiplier), CycleMultiplier, ">= 1 (T_mult, an integer)");
        return errors;
    }
}
