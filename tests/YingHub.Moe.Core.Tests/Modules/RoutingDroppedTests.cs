using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>
/// <see cref="MoeLayerRouting.Dropped"/> on a real model with capacity in evaluation, against a naive reference: per
/// expert, its assignments in the ranking's order, the first ceil(factor · N · k / E) kept.
/// </summary>
public class RoutingDroppedTests
{
    private const int B = 3, T = 12;

    [Theory]
    [InlineData(CapacityRankingRule.Position, 0.5)]
    [InlineData(CapacityRankingRule.Flat, 0.5)]
    [InlineData(CapacityRankingRule.Position, 0.9)]
    public void Dropped_marks_exactly_the_assignments_capacity_drops(CapacityRankingRule ranking, double factor)
    {
        torch.manual_seed(7);
        var options = Tiny.Options(o => { o.CapacityFactor = factor; o.CapacityInEvaluation = true; o.CapacityRanking = ranking; });
        using var model = new MoeForCausalLM(options);
        model.eval();
        using var ids = torch.randint(0, options.VocabSize, [B, T], dtype: ScalarType.Int64);
        using var noGrad = torch.no_grad();
        using var output = model.call(new CausalLMInput(ids, OutputRouterLogits: true));

        int n = B * T, k = options.TopK, e = options.NumExperts;
        long capacity = (long)Math.Ceiling(factor * n * k / e - 1e-9);
        long totalDropped = 0;
        foreach (var (routing, stats) in output.Routing!.Zip(output.RouterStats))
        {
            long[] chosen = routing.SelectedExperts.data<long>().ToArray(); // (N·k)
            bool[] dropped = routing.Dropped!.data<bool>().ToArray();        // (N·k)
            Assert.Equal(new long[] { n, k }, routing.Dropped.shape);
            var expected = new bool[n * k];
            for (int expert = 0; expert < e; expert++)
            {
                // token b·T + t; Position ranks by (t, b), Flat by (b, t)
                var order = Enumerable.Range(0, n * k).Where(a => chosen[a] == expert)
                    .OrderBy(a => ranking == CapacityRankingRule.Position ? (a / k % T) * B + a / k / T : a / k).ToList();
                foreach (int a in order.Skip((int)capacity)) expected[a] = true;
            }

            Assert.Equal(expected, dropped);
            var perExpert = Enumerable.Range(0, e).Select(x => (long)Enumerable.Range(0, n * k).Count(a => dropped[a] && chosen[a] == x)).ToArray();
            Assert.Equal(stats.Dropped.data<long>().ToArray(), perExpert); // agrees with the statistics' per-expert count
            totalDropped += perExpert.Sum();
        }

        Assert.True(totalDropped > 0, "the capacity should bind in this setting");
    }

    [Fact]
    public void Without_capacity_nothing_is_dropped_and_padding_is_never_dropped()
    {
        torch.manual_seed(8);
        using var model = new MoeForCausalLM(Tiny.Options());
        model.eval();
        using var ids = torch.randint(0, 19, [2, T], dtype: ScalarType.Int64);
        using var noGrad = torch.no_grad();
        using (var output = model.call(new CausalLMInput(ids, OutputRouterLogits: true)))
            Assert.All(output.Routing!, r => Assert.False(r.Dropped!.any().item<bool>()));

        using var capped = new MoeForCausalLM(Tiny.Options(o => { o.CapacityFactor = 0.25; o.CapacityInEvaluation = true; }));
        capped.eval();
        using var mask = torch.ones(2, T, dtype: ScalarType.Bool);
        mask[0, ..4] = false;                                                                        // row 0 left-padded
        using var padded = capped.call(new CausalLMInput(ids, AttentionMask: mask, OutputRouterLogits: true));
        foreach (var r in padded.Routing!)
        {
            Assert.False(r.Dropped![..4].any().item<bool>());                                        // padding takes no assignment
            Assert.True(r.Dropped.any().item<bool>());
        }
    }
}
