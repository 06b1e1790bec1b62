using YingHub.Moe.Training.Routing;

namespace YingHub.Moe.Training.Tests.Routing;

public class TopKControllerTests
{
    [Fact]
    public void K_goes_down_when_utilization_is_high_up_when_low_within_bounds_and_cooldown()
    {
        var controller = new TopKController(new TopKControllerOptions { High = 0.9, Low = 0.5, MinK = 1, MaxK = 3, Cooldown = 100 });
        Assert.Equal(1, controller.Update(step: 10, utilization: 0.95, currentK: 2)); // well spread: fewer experts per token
        Assert.Null(controller.Update(50, 0.2, 1));                                   // cooling down since step 10
        Assert.Equal(2, controller.Update(110, 0.2, 1));                              // collapsed: more experts per token
        Assert.Null(controller.Update(300, 0.7, 2));                                  // in the band: no change
        Assert.Equal(3, controller.Update(300, 0.1, 2));
        Assert.Null(controller.Update(500, 0.1, 3));                                  // already at MaxK
        Assert.Null(controller.Update(700, double.NaN, 3));
    }

    [Fact]
    public void Invalid_settings_name_the_field()
    {
        var ex = Assert.Throws<ArgumentException>(() => new TopKController(new TopKControllerOptions { High = 0.4, Low = 0.5 }));
        Assert.Contains("Low = 0.5 is invalid; allowed: [0, High = 0.4).", ex.Message);
        Assert.Equal("options", ex.ParamName);
    }
}
