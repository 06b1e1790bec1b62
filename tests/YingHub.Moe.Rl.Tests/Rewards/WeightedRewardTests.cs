using YingHub.Moe.Rewards;
using YingHub.Moe.Rl.Rewards;

namespace YingHub.Moe.Rl.Tests.Rewards;

/// <summary>A reward with fixed components that counts its batch calls.</summary>
internal sealed class FixedReward(double total, params (string Name, double Value)[] components) : IRewardFunction
{
    public int BatchCalls { get; private set; }

    public RewardResult Score(string text) => new(total, components.ToDictionary(c => c.Name, c => c.Value));

    public IReadOnlyList<RewardResult> ScoreBatch(IReadOnlyList<string> texts)
    {
        BatchCalls++;
        return texts.Select(Score).ToArray();
    }
}

public class WeightedRewardTests
{
    [Fact]
    public void A_function_reward_is_its_function_under_its_name()
    {
        var reward = new FunctionReward("length", t => t.Length);
        RewardResult r = reward.Score("abcd");
        Assert.Equal(4, r.Total);
        Assert.Equal(new Dictionary<string, double> { ["length"] = 4 }, r.Components);
        Assert.Throws<ArgumentException>(() => new FunctionReward(" ", t => 0));
    }

    [Fact]
    public void The_total_is_the_weighted_sum_and_every_component_is_logged_under_its_term()
    {
        var fixedReward = new FixedReward(3, ("x", 0.2), ("y", 0.7));
        var reward = new WeightedReward(
            new RewardTerm("len", 2, new FunctionReward("chars", t => t.Length)),
            new RewardTerm("fixed", -0.5, fixedReward));

        RewardResult r = reward.Score("abc");

        Assert.Equal(2 * 3 - 0.5 * 3, r.Total, 12);
        var expected = new Dictionary<string, double>
        {
            ["len"] = 3, ["len/chars"] = 3,
            ["fixed"] = 3, ["fixed/x"] = 0.2, ["fixed/y"] = 0.7,
        };
        Assert.Equal(expected.OrderBy(p => p.Key), r.Components.OrderBy(p => p.Key));
    }

    [Fact]
    public void A_batch_calls_each_term_once_and_keeps_the_order()
    {
        var fixedReward = new FixedReward(1);
        var reward = new WeightedReward(new RewardTerm("len", 1, new FunctionReward("chars", t => t.Length)), new RewardTerm("one", 10, fixedReward));

        IReadOnlyList<RewardResult> results = ((IRewardFunction)reward).ScoreBatch(["a", "abcd", ""]);

        Assert.Equal([11.0, 14.0, 10.0], results.Select(r => r.Total));
        Assert.Equal(1, fixedReward.BatchCalls);
    }

    [Theory]
    [InlineData("a", "a", 1.0)]          // repeated name
    [InlineData("a", "b/c", 1.0)]        // the separator in a name
    [InlineData("a", " ", 1.0)]          // blank name
    [InlineData("a", "b", double.NaN)]
    [InlineData("a", "b", double.PositiveInfinity)]
    public void Bad_terms_are_refused(string first, string second, double weight)
    {
        var f = new FunctionReward("f", _ => 0);
        var e = Assert.Throws<ArgumentException>(() => new WeightedReward(new RewardTerm(first, 1, f), new RewardTerm(second, weight, f)));
        Assert.Equal("terms", e.ParamName);
    }

    [Fact]
    public void No_terms_or_a_missing_reward_are_refused()
    {
        Assert.Throws<ArgumentException>(() => new WeightedReward());
        Assert.Throws<ArgumentException>(() => new WeightedReward(new RewardTerm("a", 1, null!)));
    }
}
