namespace YingHub.Moe.Training.Schedules;

/// <summary>The YingHub-v2 recipe's progress-dependent values.</summary>
public static class YingHubV2Schedules
{
    /// <summary>Global clip norm at the start of training.</summary>
    public const double GlobalClipNormStart = 1.0;

    /// <summary>Global clip norm at half of training.</summary>
    public const double GlobalClipNormMiddle = 2.0;

    /// <summary>Global clip norm at the end of training.</summary>
    public const double GlobalClipNormEnd = 2.5;

    /// <summary>Progress at which the clip norm's second stage starts.</summary>
    public const double GlobalClipNormMidpoint = 0.5;

    /// <summary>Token-masking probability at the start of training.</summary>
    public const double MaskProbabilityStart = 0.20;

    /// <summary>Token-masking probability at the end of training.</summary>
    public const double MaskProbabilityEnd = 0.05;

    /// <summary>Stage-wise global gradient clip norm: 1.0 → 2.0 over the first half, 2.0 → 2.5 over the second.</summary>
    public static PiecewiseLinearSchedule GlobalClipNorm() => new(
    [
        (0.0, GlobalClipNormStart),
        (GlobalClipNormMidpoint, GlobalClipNormMiddle),
        (1.0, GlobalClipNormEnd),
    ]);

    /// <summary>Dynamic token-masking probability: linear 0.20 → 0.05 over training.</summary>
    public static PiecewiseLinearSchedule MaskProbability() => new(
    [
        (0.0, MaskProbabilityStart),
        (1.0, MaskProbabilityEnd),
    ]);
}
