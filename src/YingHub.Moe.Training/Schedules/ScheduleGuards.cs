namespace YingHub.Moe.Training.Schedules;

/// <summary>Argument checks shared by the schedules.</summary>
internal static class ScheduleGuards
{
    /// <summary>Throws when <paramref name="step"/> is negative.</summary>
    public static void NonNegativeStep(long step, string paramName = "step")
    {
        if (step < 0)
            throw new ArgumentException($"{paramName} = {step} is invalid; allowed: >= 0.", paramName);
    }

    /// <summary>Linear warmup factor for <paramref name="step"/> &lt; <paramref name="warmupSteps"/>: (step + 1) / warmup.</summary>
    public static double WarmupFactor(long step, long warmupSteps) => (step + 1) / (double)warmupSteps;

    /// <summary>Half-cosine from <paramref name="peak"/> (progress 0) to <paramref name="min"/> (progress 1).</summary>
    public static double Cosine(double peak, double min, double progress) =>
        min + (peak - min) * (1 + Math.Cos(Math.PI * progress)) / 2;
}
