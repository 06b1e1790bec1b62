using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Routing;
using YingHub.Moe.Training.Tests.Optimization;

namespace YingHub.Moe.Training.Tests.Configuration;

public class TrainingOptionsValidationTests
{
    [Fact]
    public void Trainer_options_list_nested_problems_under_the_property_that_holds_them()
    {
        var options = new TrainerOptions
        {
            Steps = 10, WarmupSteps = -1, LogInterval = 1, EvalInterval = 1,
            ModuleGradientClip = new GradientClipOptions { OtherMaxNorm = 0 },
            AdaptiveTopK = new TopKControllerOptions { High = 0.4, Low = 0.5 },
            EarlyStopping = new EarlyStoppingOptions { Patience = 0 },
        };

        IReadOnlyList<OptionError> errors = options.GetValidationErrors();

        Assert.Equal(new[] { "WarmupSteps", "ModuleGradientClip.OtherMaxNorm", "AdaptiveTopK.Low", "EarlyStopping.Patience" }, errors.Select(e => e.Field));
        Assert.Contains(errors, e => e.Message == "ModuleGradientClip.OtherMaxNorm = 0 is invalid; allowed: > 0 (+infinity disables).");
        Assert.Contains(errors, e => e.Message == "AdaptiveTopK.Low = 0.5 is invalid; allowed: [0, High = 0.4).");
        var ex = Assert.Throws<ArgumentException>(() => options.ThrowIfInvalid(nameof(options)));
        Assert.Equal("options", ex.ParamName);
        Assert.StartsWith("Invalid TrainerOptions: WarmupSteps = -1 is invalid; allowed: [0, 100000000]. ModuleGradientClip.OtherMaxNorm = 0", ex.Message);
    }

    [Fact]
    public void Optimizer_step_options_keep_the_constructor_s_rules()
    {
        Assert.Empty(new OptimizerStepOptions().GetValidationErrors());
        var bad = new OptimizerStepOptions
        {
            AdamW = new AdamWGroupOptions { Beta2 = 1.0 }, GradientAccumulation = 4097, GradientClip = 0, TotalSteps = 0,
            ModuleGradientClip = new GradientClipOptions { OtherMaxNorm = -1 }, Precision = (TrainingPrecision)7,
        };

        Assert.Equal(new[] { "AdamW.Beta2", "GradientAccumulation", "GradientClip", "TotalSteps", "ModuleGradientClip.OtherMaxNorm", "Precision" },
            bad.GetValidationErrors().Select(e => e.Field));
        Assert.Equal("GradientClip = 0 is invalid; allowed: (0, 1000000] or null.", bad.GetValidationErrors()[2].Message);

        // the limits themselves: 1 and 4096 micro-batches, a clip of 1e6, one step
        Assert.Empty(new OptimizerStepOptions { GradientAccumulation = 4096, GradientClip = 1e6, TotalSteps = 1 }.GetValidationErrors());
        Assert.Single(new OptimizerStepOptions { GradientAccumulation = 0 }.GetValidationErrors());
        Assert.Single(new OptimizerStepOptions { GradientClip = double.NaN }.GetValidationErrors());

        // loss scaling is checked where it is used, in fp16
        var scaling = new DynamicLossScalerOptions { GrowthInterval = 0 };
        Assert.Empty(new OptimizerStepOptions { LossScaling = scaling }.GetValidationErrors());
        Assert.Equal("LossScaling.GrowthInterval", Assert.Single(new OptimizerStepOptions { LossScaling = scaling, Precision = TrainingPrecision.Fp16 }.GetValidationErrors()).Field);
    }

    [Fact]
    public void Optimizer_step_throws_every_problem_naming_its_options()
    {
        using var model = new MoeForCausalLM(RealModel.Options());
        var ex = Assert.Throws<ArgumentException>(() => new OptimizerStep(model, new OptimizerStepOptions { GradientAccumulation = 0, TotalSteps = 0 }));
        Assert.Equal("options", ex.ParamName);
        Assert.Contains("GradientAccumulation = 0 is invalid; allowed: [1, 4096].", ex.Message);
        Assert.Contains("TotalSteps = 0 is invalid; allowed: >= 1.", ex.Message);
        Assert.Throws<ArgumentNullException>(() => new OptimizerStep(model, new OptimizerStepOptions { Schedule = null! }));
    }
}
