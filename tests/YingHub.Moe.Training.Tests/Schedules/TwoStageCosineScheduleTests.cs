using YingHub.Moe.Training.Schedules;

namespace YingHub.Moe.Training.Tests.Schedules;

public class TwoStageCosineScheduleTests
{
    private const double Tolerance = 1e-15;

    [Fact]
    public void TwoStagesMatchClosedForm()
    {
        const long Warmup = 10, Milestone = 110, Total = 310;
        const double P1 = 1e-3, M1 = 1e-4, P2 = 5e-4, M2 = 1e-5;
        var schedule = new TwoStageCosineSchedule(new TwoStageCosineOptions
        {
            WarmupSteps = Warmup, MilestoneStep = Milestone, TotalSteps = Total,
            FirstPeakLearningRate = P1, FirstMinLearningRate = M1, SecondPeakLearningRate = P2, SecondMinLearningRate = M2,
        });

        static double Expected(long s)
        {
            if (s < Warmup) return P1 * (s + 1) / Warmup;
            if (s < Milestone) return M1 + (P1 - M1) * (1 + Math.Cos(Math.PI * (s - Warmup) / (Milestone - Warmup))) / 2;
            if (s < Total) return M2 + (P2 - M2) * (1 + Math.Cos(Math.PI * (s - Milestone) / (Total - Milestone))) / 2;
            return M2;
        }

        foreach (long s in new long[] { 0, 9, 10, 60, 109, 110, 111, 210, 309, 310, 1000 })
            Assert.Equal(Expected(s), schedule.At(s), Tolerance);
        Assert.Equal(P2, schedule.At(Milestone), Tolerance);
        Assert.Equal((M1 + P1) / 2, schedule.At(60), Tolerance);
    }

    [Fact]
    public void SequentialScheduleOffsetsEachSegment()
    {
        var schedule = new SequentialSchedule(
            [new ConstantSchedule(1), new WarmupCosineSchedule(new WarmupCosineOptions { PeakLearningRate = 2, TotalSteps = 2 }), new ConstantSchedule(3)],
            [5, 7]);
        Assert.Equal(1, schedule.At(4));
        Assert.Equal(2, schedule.At(5), Tolerance);
        Assert.Equal(1, schedule.At(6), Tolerance);
        Assert.Equal(3, schedule.At(7));
    }

    [Fact]
    public void SequentialScheduleRejectsBadMilestones()
    {
        ILearningRateSchedule c = new ConstantSchedule(1);
        Assert.Equal("milestones", Assert.Throws<ArgumentException>(() => new SequentialSchedule([c, c], [])).ParamName);
        Assert.Equal("milestones", Assert.Throws<ArgumentException>(() => new SequentialSchedule([c, c, c], [5, 5])).ParamName);
        Assert.Equal("milestones", Assert.Throws<ArgumentException>(() => new SequentialSchedule([c, c], [0])).ParamName);
    }

    [Fact]
    public void InvalidMilestoneNamed()
    {
        var ex = Assert.Throws<ArgumentException>(() => new TwoStageCosineSchedule(new TwoStageCosineOptions { WarmupSteps = 5, MilestoneStep = 5, TotalSteps = 10 }));
        Assert.Equal("MilestoneStep", ex.ParamName);
    }
}
