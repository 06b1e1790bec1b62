using Microsoft.Extensions.Options;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Training.Schedules;

namespace YingHub.Moe.Training.Tests.Configuration;

public class ValidatableOptionsValidatorTests
{
    [Fact]
    public void ReportsEveryFailureWithFieldValueAndRange()
    {
        var validator = new ValidatableOptionsValidator<WarmupCosineRestartsOptions>();
        Assert.True(validator.Validate(null, new WarmupCosineRestartsOptions()).Succeeded);
        ValidateOptionsResult result = validator.Validate(null, new WarmupCosineRestartsOptions { FirstCycleSteps = 0, CycleMultiplier = 0, WarmupSteps = -3 });
        Assert.True(result.Failed);
        Assert.Equal(3, result.Failures!.Count());
        Assert.Contains(result.Failures!, f => f == "WarmupSteps = -3 is invalid; allowed: >= 0.");
    }
}
