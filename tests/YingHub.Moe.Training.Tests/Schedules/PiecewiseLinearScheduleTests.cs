using YingHub.Moe.Training.Schedules;

namespace YingHub.Moe.Training.Tests.Schedules;

public class PiecewiseLinearScheduleTests
{
    private const double Tolerance = 1e-12;

    [Theory]
    [InlineData(0.0, 1.0)]
    [InlineData(0.25, 1.5)]
    [InlineData(0.5, 2.0)]
    [InlineData(0.75, 2.25)]
    [InlineData(1.0, 2.5)]
    [InlineData(1.5, 2.5)]
    [InlineData(-0.1, 1.0)]
    public void YingHubV2GlobalClipNorm(double progress, double expected) =>
        Assert.Equal(expected, YingHubV2Schedules.GlobalClipNorm().At(progress), Tolerance);

    [Theory]
    [InlineData(0L, 0.20)]
    [InlineData(500L, 0.125)]
    [InlineData(250L, 0.1625)]
    [InlineData(1000L, 0.05)]
    public void YingHubV2MaskProbabilityAtSteps(long step, double expected) =>
        Assert.Equal(expected, YingHubV2Schedules.MaskProbability().AtStep(step, 1000), Tolerance);

    [Fact]
    public void RejectsBadKnotsAndProgress()
    {
        Assert.Equal("knots", Assert.Throws<ArgumentException>(() => new PiecewiseLinearSchedule([])).ParamName);
        Assert.Equal("knots", Assert.Throws<ArgumentException>(() => new PiecewiseLinearSchedule([(0, 1), (0, 2)])).ParamName);
        Assert.Equal("knots", Assert.Throws<ArgumentException>(() => new PiecewiseLinearSchedule([(0, double.NaN)])).ParamName);
        var schedule = new PiecewiseLinearSchedule([(0, 1)]);
        Assert.Equal(1, schedule.At(42));
        Assert.Equal("progress", Assert.Throws<ArgumentException>(() => schedule.At(double.NaN)).ParamName);
        Assert.Equal("totalSteps", Assert.Throws<ArgumentException>(() => schedule.AtStep(1, 0)).ParamName);
    }
}
