using YingHub.Moe.Rewards;
using YingHub.Moe.Rl.Rewards;

namespace YingHub.Moe.Rl.Tests.Rewards;

public class RewardScoringTests
{
    private sealed class Fixed(params double[] totals) : IRewardFunction
    {
        public RewardResult Score(string text) => throw new NotSupportedException();

        public IReadOnlyList<RewardResult> ScoreBatch(IReadOnlyList<string> texts) =>
            totals.Select(t => new RewardResult(t, new Dictionary<string, double>())).ToList();
    }

    [Fact]
    public void Checked_scores_pass_through_and_a_wrong_count_or_a_non_finite_total_is_refused_naming_the_response()
    {
        Assert.Equal([0.5, 2.0], new Fixed(0.5, 2.0).ScoreChecked(["a", "b"]).Select(r => r.Total));
        Assert.Contains("1 results for 2 texts", Assert.Throws<InvalidOperationException>(() => new Fixed(0.5).ScoreChecked(["a", "b"])).Message);
        string message = Assert.Throws<InvalidOperationException>(() => new Fixed(0.5, double.NaN).ScoreChecked(["a", "bad one"])).Message;
        Assert.Contains("response 1", message);
        Assert.Contains("bad one", message);
        Assert.Throws<InvalidOperationException>(() => new Fixed(double.PositiveInfinity).ScoreChecked(["a"]));
    }

    [Fact]
    public void A_reward_evaluation_is_the_mean_and_the_sample_standard_deviation_over_root_n()
    {
        // 1, 2, 3, 6: mean 3, sample variance (4 + 1 + 0 + 9) / 3 = 14/3, standard error √(14/3 / 4)
        var e = RewardEvaluation.Of([1, 2, 3, 6]);
        Assert.Equal(3, e.Mean, 12);
        Assert.Equal(Math.Sqrt(14.0 / 3 / 4), e.StandardError, 12);
        Assert.Equal(4, e.Count);
        Assert.True(double.IsNaN(RewardEvaluation.Of([2.5]).StandardError)); // one reward has no spread to measure
        Assert.Throws<ArgumentException>(() => RewardEvaluation.Of([]));
    }
}
