using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Schedules;

/// <summary>
/// Options of <see cref="TwoStageCosineSchedule"/> (the YingHub-v2 schedule): warmup and a cosine from the first peak to
/// the first minimum at the milestone, then a second cosine from its own peak to its own minimum at the end.
/// </summary>
public sealed class TwoStageCosineOptions : IValidatableOptions
{
    /// <summary>Warmup steps at the start of stage 1; in [0, <see cref="MilestoneStep"/>).</summary>
    public long WarmupSteps { get; set; }

    /// <summary>The step at which stage 2 starts; &gt; <see cref="WarmupSteps"/>.</summary>
    public long MilestoneStep { get; set; } = 1;

    /// <summary>The step at which stage 2 reaches its minimum (counted from step 0); &gt; <see cref="MilestoneStep"/>.</summary>
    public long TotalSteps { get; set; } = 2;

    /// <summary>Stage 1 peak; finite, &gt; 0.</summary>
    public double FirstPeakLearningRate { get; set; } = 1e-3;

    /// <summary>Stage 1 minimum, reached at the milestone; finite, in [0, <see cref="FirstPeakLearningRate"/>].</summary>
    public double FirstMinLearningRate { get; set; }

    /// <summary>Stage 2 peak, the rate at the milestone; finite, &gt; 0.</summary>
    public double SecondPeakLearningRate { get; set; } = 1e-3;

    /// <summary>Stage 2 minimum; finite, in [0, <see cref="SecondPeakLearningRate"/>].</summary>
    public double SecondMinLearningRate { get; set; }

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(WarmupSteps >= 0, nameof(WarmupSteps), WarmupSteps, ">= 0");
        errors.Require(MilestoneStep > WarmupSteps && MilestoneStep > 0, nameof(MilestoneStep), MilestoneStep, $"> WarmupSteps = {WarmupSteps} and > 0");
        errors.Require(TotalSteps > MilestoneStep, nameof(TotalSteps), TotalSteps, $"> MilestoneStep = {MilestoneStep}");
        errors.Require(double.IsFinite(FirstPeakLearningRate) && FirstPeakLearningRate > 0, nameof(FirstPeakLearningRate), FirstPeakLearningRate, "finite and > 0");
        errors.Require(double.IsFinite(FirstMinLearningRate) && FirstMinLearningRate >= 0 && FirstMinLearningRate <= FirstPeakLearningRate,
            nameof(FirstMinLearningRate), FirstMinLearningRate, $"finite, in [0, FirstPeakLearningRate = {FirstPeakLearningRate}]");
        errors.Require(double.IsFinite(SecondPeakLearningRate) && SecondPeakLearningRate > 0, nameof(SecondPeakLearningRate), SecondPeakLearningRate, "finite and > 0");
        errors.Require(double.IsFinite(SecondMinLearningRate) && SecondMinLearningRate >= 0 && SecondMinLearningRate <= SecondPeakLearningRate,
            nameof(SecondMinLearningRate), SecondMinLearningRate, $"finite, in [0, SecondPeakLearningRate = {SecondPeakLearningRate}]");
        return errors;
    }
}
