using YingHub.Moe.Training.Schedules;

namespace YingHub.Moe.Training.Tests.Schedules;

public class WarmupCosineScheduleTests
{
    private const double Tolerance = 1e-15;

    [Fact]
    public void WarmupThenCosineMatchesClosedForm()
    {
        const double Peak = 6e-4, Min = 6e-5;
        const long Warmup = 100, Total = 1100;
        var schedule = new WarmupCosineSchedule(new WarmupCosineOptions
        {
            PeakLearningRate = Peak, MinLearningRate = Min, WarmupSteps = Warmup, TotalSteps = Total,
        });

        static double Expected(long s) => s < Warmup
            ? Peak * (s + 1) / Warmup
            : s >= Total ? Min : Min + 0.5 * (Peak - Min) * (1 + Math.Cos(Math.PI * (s - Warmup) / (Total - Warmup)));

        foreach (long s in new long[] { 0, 1, 49, 98, 99, 100, 101, 350, 600, 850, 1099, 1100, 5000 })
            Assert.Equal(Expected(s), schedule.At(s), Tolerance);
        Assert.Equal(Peak / Warmup, schedule.At(0), Tolerance);
        Assert.Equal(Peak, schedule.At(99), Tolerance);
        Assert.Equal(Peak, schedule.At(100), Tolerance);
        Assert.Equal((Peak + Min) / 2, schedule.At(600), Tolerance);
        Assert.Equal(Min, schedule.At(1100), Tolerance);
    }

    [Fact]
    public void NoWarmupStartsAtPeak()
    {
        var schedule = new WarmupCosineSchedule(new WarmupCosineOptions { PeakLearningRate = 1, MinLearningRate = 0, TotalSteps = 4 });
        Assert.Equal(1.0, schedule.At(0), Tolerance);
        Assert.Equal(0.5, schedule.At(2), Tolerance);
        Assert.Equal(0.0, schedule.At(4), Tolerance);
    }

    [Fact]
    public void InvalidOptionsListEveryField()
    {
        var options = new WarmupCosineOptions { PeakLearningRate = -1, MinLearningRate = 2, WarmupSteps = 10, TotalSteps = 10 };
        var ex = Assert.Throws<ArgumentException>(() => new WarmupCosineSchedule(options));
        Assert.Equal("PeakLearningRate", ex.ParamName);
        Assert.Contains("PeakLearningRate = -1", ex.Message);
        Assert.Contains("MinLearningRate = 2", ex.Message);
        Assert.Contains("TotalSteps = 10", ex.Message);
        Assert.Equal(3, options.GetValidationErrors().Count);
    }

    [Fact]
    public void ConstantScheduleIsConstantAndValidates()
    {
        var schedule = new ConstantSchedule(3e-4);
        Assert.Equal(3e-4, schedule.At(0));
        Assert.Equal(3e-4, schedule.At(123_456));
        Assert.Equal("learningRate", Assert.Throws<ArgumentException>(() => new ConstantSchedule(0)).ParamName);
        Assert.Throws<ArgumentException>(() => new ConstantSchedule(double.NaN));
    }
}
