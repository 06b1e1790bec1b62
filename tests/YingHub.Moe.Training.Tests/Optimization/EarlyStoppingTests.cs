using YingHub.Moe.Training.Optimization;

namespace YingHub.Moe.Training.Tests.Optimization;

public class EarlyStoppingTests
{
    [Fact]
    public void StopsAfterPatienceWithoutImprovementBeyondMinDelta()
    {
        var es = new EarlyStopping(new EarlyStoppingOptions { Patience = 2, MinDelta = 0.01 });
        var d = es.Update(100, 2.0);
        Assert.True(d.Improved);
        Assert.Equal(100, d.BestStep);

        d = es.Update(200, 1.995); // within MinDelta: not an improvement
        Assert.False(d.Improved);
        Assert.False(d.ShouldStop);
        Assert.Equal(1, d.EvaluationsWithoutImprovement);

        d = es.Update(300, 1.9); // improvement resets the counter
        Assert.True(d.Improved);
        Assert.Equal((300L, 1.9, 0), (d.BestStep!.Value, d.BestLoss, d.EvaluationsWithoutImprovement));

        Assert.False(es.Update(400, 1.95).ShouldStop);
        d = es.Update(500, 1.899);
        Assert.True(d.ShouldStop);
        Assert.Equal(300, d.BestStep);
        Assert.True(d.RestoreBestWeights);
        Assert.True(es.Update(600, 5).ShouldStop); // stays stopped
    }

    [Fact]
    public void NaNNeverImproves()
    {
        var es = new EarlyStopping(new EarlyStoppingOptions { Patience = 1, RestoreBestWeights = false });
        var d = es.Update(0, double.NaN);
        Assert.False(d.Improved);
        Assert.Null(d.BestStep);
        Assert.True(d.ShouldStop);
        Assert.False(d.RestoreBestWeights);
    }

    [Fact]
    public void StateRoundTripsForResume()
    {
        var es = new EarlyStopping(new EarlyStoppingOptions { Patience = 3 });
        es.Update(10, 1.0);
        es.Update(20, 1.1);
        var resumed = new EarlyStopping(new EarlyStoppingOptions { Patience = 3 });
        resumed.Restore(es.State);
        Assert.Equal(es.State, resumed.State);
        Assert.Equal(es.Update(30, 1.2), resumed.Update(30, 1.2));
    }

    [Fact]
    public void RejectsBadInput()
    {
        var es = new EarlyStopping(new EarlyStoppingOptions());
        es.Update(10, 1.0);
        Assert.Equal("step", Assert.Throws<ArgumentException>(() => es.Update(10, 0.5)).ParamName);
        Assert.Equal("step", Assert.Throws<ArgumentException>(() => es.Update(-1, 0.5)).ParamName);
        var ex = Assert.Throws<ArgumentException>(() => new EarlyStopping(new EarlyStoppingOptions { Patience = 0, MinDelta = -1 }));
        Assert.Equal("Patience", ex.ParamName);
        Assert.Contains("MinDelta = -1", ex.Message);
        Assert.Equal("state", Assert.Throws<ArgumentException>(() => es.Restore(new EarlyStoppingState(5, double.NaN, 0, 5))).ParamName);
    }
}
