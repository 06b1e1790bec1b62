using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Training.Optimization;

namespace YingHub.Moe.Training.Tests.Optimization;

public class DynamicLossScalerTests
{
    private static Parameter WithGrad(float[] grad)
    {
        var p = new Parameter(torch.zeros(grad.Length));
        p.grad = torch.tensor(grad);
        return p;
    }

    [Fact]
    public void Finite_gradients_are_divided_by_the_scale_and_the_scale_grows_after_the_interval()
    {
        using var scope = torch.NewDisposeScope();
        var scaler = new DynamicLossScaler(new DynamicLossScalerOptions { InitialScale = 8, GrowthInterval = 2, GrowthFactor = 2 });
        Assert.Equal(24.0, scaler.ScaleLoss(torch.tensor(3.0f)).item<float>());
        var a = WithGrad([8f, -4f]);
        var b = WithGrad([2f]);
        Assert.True(scaler.UnscaleGradients([a, b]));
        Assert.Equal([1f, -0.5f], a.grad!.data<float>().ToArray());
        Assert.Equal([0.25f], b.grad!.data<float>().ToArray());
        Assert.Equal(8, scaler.Update(true));  // one good step
        Assert.Equal(16, scaler.Update(true)); // two: grow
        Assert.Equal(new LossScalerState(16, 0, 0), scaler.State);
    }

    [Theory]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NaN)]
    public void An_injected_inf_or_nan_is_found_and_the_scale_is_halved_and_the_growth_count_reset(float bad)
    {
        using var scope = torch.NewDisposeScope();
        var scaler = new DynamicLossScaler(new DynamicLossScalerOptions { InitialScale = 1024, GrowthInterval = 3 });
        scaler.Update(true);
        Assert.False(scaler.UnscaleGradients([WithGrad([1f, 2f]), WithGrad([3f, bad])]));
        Assert.Equal(512, scaler.Update(false));
        Assert.Equal(new LossScalerState(512, 0, 1), scaler.State);
    }

    [Fact]
    public void Bad_options_and_states_are_refused_naming_the_field()
    {
        var ex = Assert.Throws<ArgumentException>(() => new DynamicLossScaler(new DynamicLossScalerOptions { BackoffFactor = 1.5 }));
        Assert.Contains("BackoffFactor = 1.5", ex.Message);
        ex = Assert.Throws<ArgumentException>(() => new DynamicLossScaler().Restore(new LossScalerState(double.NaN, 0, 0)));
        Assert.Contains("Scale", ex.Message);
    }
}
