using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Training.Schedules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Tests.Schedules;

public class LearningRateApplierTests
{
    private static optim.Optimizer TwoGroupAdamW(out Parameter a, out Parameter b)
    {
        a = new Parameter(zeros(2));
        b = new Parameter(zeros(2));
        return optim.AdamW([new AdamW.ParamGroup([a], lr: 1), new AdamW.ParamGroup([b], lr: 1)]);
    }

    [Fact]
    public void AppliesScheduleTimesGroupMultiplier()
    {
        using var optimizer = TwoGroupAdamW(out _, out _);
        var schedule = new WarmupCosineSchedule(new WarmupCosineOptions { PeakLearningRate = 1e-3, WarmupSteps = 10, TotalSteps = 100 });
        var applier = new LearningRateApplier(optimizer, schedule, [1.0, 0.5]);
        double lr = applier.Apply(4);
        Assert.Equal(schedule.At(4), lr);
        var groups = optimizer.ParamGroups.ToArray();
        Assert.Equal(lr, groups[0].LearningRate);
        Assert.Equal(lr * 0.5, groups[1].LearningRate);
    }

    [Fact]
    public void RejectsMismatchedMultipliers()
    {
        using var optimizer = TwoGroupAdamW(out _, out _);
        var ex = Assert.Throws<ArgumentException>(() => new LearningRateApplier(optimizer, new ConstantSchedule(1), [1.0]));
        Assert.Equal("groupMultipliers", ex.ParamName);
        Assert.Throws<ArgumentException>(() => new LearningRateApplier(optimizer, new ConstantSchedule(1), [1.0, 0.0]));
    }

    [Fact]
    public void LRSchedulerSubclassFollowsTheScheduleAndResumes()
    {
        using var optimizer = TwoGroupAdamW(out _, out _);
        var schedule = new WarmupCosineRestartsSchedule(new WarmupCosineRestartsOptions { PeakLearningRate = 1, FirstCycleSteps = 10, CycleMultiplier = 2, WarmupSteps = 3 });
        var scheduler = new ScheduleLRScheduler(optimizer, schedule, [1.0, 2.0]);
        var rates = new List<double> { optimizer.ParamGroups.First().LearningRate };
        for (int i = 1; i < 20; i++)
        {
            scheduler.step();
            rates.Add(optimizer.ParamGroups.First().LearningRate);
            Assert.Equal(2 * rates[^1], optimizer.ParamGroups.Last().LearningRate);
        }

        for (int i = 0; i < 20; i++) Assert.Equal(schedule.At(i), rates[i]);
        Assert.Equal(19, scheduler.CurrentStep);

        using var resumedOptimizer = TwoGroupAdamW(out _, out _);
        var resumed = new ScheduleLRScheduler(resumedOptimizer, schedule, [1.0, 2.0], startStep: 12);
        Assert.Equal(rates[12], resumedOptimizer.ParamGroups.First().LearningRate);
        resumed.step();
        Assert.Equal(rates[13], resumedOptimizer.ParamGroups.First().LearningRate);
    }
}
