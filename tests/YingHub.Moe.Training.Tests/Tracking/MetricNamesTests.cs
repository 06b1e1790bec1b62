using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Tests.Tracking;

public class MetricNamesTests
{
    [Theory]
    [InlineData(0, 0, "expert_load/0/0")]
    [InlineData(3, 17, "expert_load/3/17")]
    [InlineData(11, 127, "expert_load/11/127")]
    public void Expert_load_names_round_trip(int layer, int expert, string name)
    {
        Assert.Equal(name, MetricNames.ExpertLoad(layer, expert));
        Assert.True(MetricNames.TryParseExpertLoad(name, out int l, out int e));
        Assert.Equal((layer, expert), (l, e));
        Assert.True(MetricNames.IsExpertLoad(name));
    }

    [Theory]
    [InlineData("train/loss")]
    [InlineData("expert_load/")]
    [InlineData("expert_load/1")]
    [InlineData("expert_load//1")]
    [InlineData("expert_load/1/")]
    [InlineData("expert_load/a/1")]
    [InlineData("expert_load/-1/2")]
    [InlineData("expert_load/1/+2")]
    [InlineData("expert_load/1/2/3")]
    [InlineData(null)]
    public void Other_names_do_not_parse(string? name)
    {
        Assert.False(MetricNames.TryParseExpertLoad(name, out int l, out int e));
        Assert.Equal((-1, -1), (l, e));
    }

    [Fact]
    public void Negative_indices_are_refused_naming_the_parameter()
    {
        Assert.Equal("layer", Assert.Throws<ArgumentException>(() => MetricNames.ExpertLoad(-1, 0)).ParamName);
        var e = Assert.Throws<ArgumentException>(() => MetricNames.ExpertLoad(0, -2));
        Assert.Equal("expert", e.ParamName);
        Assert.Contains("-2", e.Message);
    }

    [Fact]
    public void The_names_follow_the_documented_convention()
    {
        string[] names =
        [
            MetricNames.TrainLoss, MetricNames.ValidationLoss, MetricNames.LearningRate, MetricNames.GradNormGlobal,
            MetricNames.GradNormRouter, MetricNames.GradNormExperts, MetricNames.GradNormOther, MetricNames.LoadBalancingLoss,
            MetricNames.ZLoss, MetricNames.Utilization, MetricNames.TopK, MetricNames.TokensPerSecond,
            MetricNames.MillisecondsPerStep, MetricNames.Mfu,
        ];
        Assert.Equal(
            ["train/loss", "val/loss", "lr", "grad_norm/global", "grad_norm/router", "grad_norm/experts", "grad_norm/other",
             "aux/load_balancing", "aux/z_loss", "utilization", "top_k", "tokens_per_s", "ms_per_step", "mfu"],
            names);
    }
}
