using YingHub.Moe.Training.Analysis;

namespace YingHub.Moe.Training.Tests.Analysis;

/// <summary>Each statistic against numbers computed by hand.</summary>
public sealed class RoutingStatisticsTests
{
    [Fact]
    public void Specialization_is_the_frequency_weighted_share_of_each_token_on_its_most_frequent_expert()
    {
        // token 1: experts 0,0,1 -> 2/3; token 2: 1,1 -> 2/2; token 3: 0 -> 1/1; weighted: (2 + 2 + 1) / 6
        double s = RoutingStatistics.Specialization([1, 1, 1, 2, 2, 3], [0, 0, 1, 1, 1, 0]);
        Assert.Equal(5.0 / 6, s, 12);
        Assert.Equal(1.0, RoutingStatistics.Specialization([7, 7, 9, 9], [2, 2, 0, 0]), 12);
        Assert.Equal(0.5, RoutingStatistics.Specialization([4, 4, 4, 4], [0, 1, 0, 1]), 12);
        Assert.Equal(0.0, RoutingStatistics.Specialization([], []));
    }

    [Fact]
    public void Shuffle_permutes_the_decisions_reproducibly()
    {
        int[] experts = [0, 0, 0, 1, 1, 2, 3, 3, 3, 3];
        int[] a = RoutingStatistics.Shuffle(experts, seed: 5), b = RoutingStatistics.Shuffle(experts, seed: 5);
        Assert.Equal(a, b);
        Assert.Equal(experts.Order(), a.Order()); // the same loads
        Assert.NotEqual(experts, a);
        Assert.Equal([0, 0, 0, 1, 1, 2, 3, 3, 3, 3], experts); // the input is left alone
    }

    [Fact]
    public void Agreement_and_chance_agreement()
    {
        int[] early = [0, 1, 1, 2], final = [0, 1, 2, 2];
        Assert.Equal(0.75, RoutingStatistics.Agreement(early, final), 12);
        // p_early = (1/4, 2/4, 1/4), p_final = (1/4, 1/4, 2/4): 1/16 + 2/16 + 2/16
        Assert.Equal(5.0 / 16, RoutingStatistics.ChanceAgreement(early, final, numExperts: 3), 12);
        Assert.Equal(5.0 / 16, RoutingStatistics.ChanceAgreement(early, final, numExperts: 4), 12); // an unused expert adds nothing
    }

    [Fact]
    public void Planted_drops_land_in_their_position_buckets()
    {
        // two blocks of T = 8, k = 2: drops at (block 0, position 6, slot 1), (block 0, position 7, both), (block 1, position 1, slot 0)
        int[] positions = [.. Enumerable.Range(0, 8), .. Enumerable.Range(0, 8)];
        var dropped = new bool[16 * 2];
        dropped[6 * 2 + 1] = dropped[7 * 2] = dropped[7 * 2 + 1] = true;
        dropped[(8 + 1) * 2] = true;

        var buckets = RoutingStatistics.DroppedByPosition(positions, dropped, topK: 2, blockLength: 8, buckets: 4);

        Assert.Equal([(0, 2), (2, 4), (4, 6), (6, 8)], buckets.Select(b => (b.Start, b.End)));
        Assert.All(buckets, b => Assert.Equal(8, b.Assignments)); // 2 positions × 2 blocks × k
        Assert.Equal([1L, 0, 0, 3], buckets.Select(b => b.Dropped));
        Assert.Equal([1 / 8.0, 0, 0, 3 / 8.0], buckets.Select(b => b.DroppedShare));
    }

    [Fact]
    public void Uneven_buckets_follow_floor_of_position_times_buckets_over_length()
    {
        // T = 10, 4 buckets: floor(p * 4 / 10) gives {0,1,2} {3,4} {5,6,7} {8,9}
        var dropped = new bool[10];
        dropped[2] = dropped[3] = dropped[8] = true;
        var buckets = RoutingStatistics.DroppedByPosition(Enumerable.Range(0, 10).ToArray(), dropped, topK: 1, blockLength: 10, buckets: 4);
        Assert.Equal([(0, 3), (3, 5), (5, 8), (8, 10)], buckets.Select(b => (b.Start, b.End)));
        Assert.Equal([3L, 2, 3, 2], buckets.Select(b => b.Assignments));
        Assert.Equal([1L, 1, 0, 1], buckets.Select(b => b.Dropped));
    }

    [Fact]
    public void Load_and_its_coefficient_of_variation()
    {
        double[] load = RoutingStatistics.Load([0, 0, 1, 3], numExperts: 4);
        Assert.Equal([0.5, 0.25, 0, 0.25], load);
        // mean 1/4, deviations (1/4, 0, -1/4, 0): variance 1/32, std sqrt(1/32) = 0.1768, CV 0.7071
        Assert.Equal(Math.Sqrt(0.5), RoutingStatistics.CoefficientOfVariation(load), 12);
        Assert.Equal(0.0, RoutingStatistics.CoefficientOfVariation([0.25, 0.25, 0.25, 0.25]), 12);
        Assert.Equal(Math.Sqrt(3), RoutingStatistics.CoefficientOfVariation([1.0, 0, 0, 0]), 12);
    }

    [Fact]
    public void Bad_input_is_refused_naming_the_value()
    {
        Assert.Contains("3 entries; 2 expected", Assert.Throws<ArgumentException>(() => RoutingStatistics.Specialization([1, 2], [0, 0, 0])).Message);
        Assert.Contains("experts[1] = 4", Assert.Throws<ArgumentException>(() => RoutingStatistics.Load([0, 4], 4)).Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => RoutingStatistics.DroppedByPosition([0], [false], 1, blockLength: 4, buckets: 5));
        Assert.Contains("positions[0] = 4", Assert.Throws<ArgumentException>(() => RoutingStatistics.DroppedByPosition([4], [false], 1, 4, 2)).Message);
        Assert.Contains("positions[1] = 9", Assert.Throws<ArgumentException>(() =>
            new RoutingRecording(2, 1, 4, [1, 2], [0, 9], [])).Message);
    }
}
