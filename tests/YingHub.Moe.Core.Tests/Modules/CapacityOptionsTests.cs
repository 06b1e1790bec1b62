using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>
/// Capacity in evaluation, its rounding (ceil, or makeMoE's floor) and its ranking (sequence position across the batch,
/// or makeMoE's flat token order), on a real <see cref="SparseMoeBlock"/> with a planted routing, against a naive
/// per-assignment loop written here; and what capacity in evaluation does to cached decoding.
/// </summary>
public class CapacityOptionsTests
{
    private const int E = 4, K = 2, C = 16;

    /// <summary>
    /// Each token's two experts, best first, for B = 2 rows of T = 3 (row-major): every token's first choice is
    /// expert 0, so expert 0 gets 6 assignments and the ranking decides which survive.
    /// </summary>
    private static readonly int[][] Choices = [[0, 1], [0, 2], [0, 3], [0, 1], [0, 2], [0, 3]];

    private const int B = 2, T = 3, N = B * T;

    private static SparseMoeBlock Block(double factor, CapacityRoundingRule rounding, CapacityRankingRule ranking, bool inEval, int[][] choices)
    {
        torch.manual_seed(11);
        var block = new SparseMoeBlock(Tiny.Options(o =>
        {
            o.NumExperts = E; o.TopK = K; o.CapacityFactor = factor; o.CapacityRounding = rounding; o.CapacityRanking = ranking;
            o.CapacityInEvaluation = inEval;
        }));
        // token n is the one-hot e_n, and the gate's column n holds its planted logits: 3 for the first choice, 2 for the second
        var gate = new float[E * C];
        for (int n = 0; n < choices.Length; n++)
        {
            gate[choices[n][0] * C + n] = 3f;
            gate[choices[n][1] * C + n] = 2f;
        }

        using (torch.no_grad())
        {
            Tiny.Param(block, "gate.weight").copy_(torch.tensor(gate, E, C));
            Tiny.Param(block, "gate.bias").zero_();
        }

        return block;
    }

    private static Tensor OneHots(int b, int t)
    {
        var x = new float[b * t * C];
        for (int n = 0; n < b * t; n++) x[n * C + n] = 1f;
        return torch.tensor(x, b, t, C);
    }

    /// <summary>relu(x W1[e] + b1[e]) W2[e] + b2[e]: one simple ReLU expert from the stacked weights.</summary>
    private static Tensor Expert(SparseMoeBlock block, int e, Tensor x) =>
        (x.matmul(Tiny.Param(block, "experts.fc1.weight")[e]) + Tiny.Param(block, "experts.fc1.bias")[e]).relu()
            .matmul(Tiny.Param(block, "experts.fc2.weight")[e]) + Tiny.Param(block, "experts.fc2.bias")[e];

    /// <summary>
    /// The naive rule: walk the assignments in rank order (flat: token by token in b·T + t order; position: t first,
    /// then b), keep an assignment while its expert has kept fewer than <paramref name="capacity"/>, and sum the kept
    /// ones weighted by softmax([3, 2]) over the token's two logits.
    /// </summary>
    private static (Tensor Output, long[] Kept) Naive(SparseMoeBlock block, Tensor x, int[][] choices, int b, int t, long? capacity, CapacityRankingRule ranking)
    {
        double first = 1 / (1 + Math.Exp(-1)), second = 1 - first;
        var flat = x.reshape(b * t, C);
        var rows = Enumerable.Range(0, b * t).Select(_ => torch.zeros(C)).ToArray();
        var kept = new long[E];
        var order = ranking == CapacityRankingRule.Flat
            ? Enumerable.Range(0, b * t)
            : Enumerable.Range(0, t).SelectMany(pos => Enumerable.Range(0, b).Select(row => row * t + pos));
        foreach (int n in order)
        {
            for (int j = 0; j < K; j++)
            {
                int e = choices[n][j];
                if (capacity is { } cap && kept[e] >= cap) continue;
                kept[e]++;
                rows[n] = rows[n] + Expert(block, e, flat[n]) * (j == 0 ? first : second);
            }
        }

        return (torch.stack(rows).reshape(b, t, C), kept);
    }

    [Theory]
    [InlineData(1.0, CapacityRoundingRule.Ceil, CapacityRankingRule.Position, 3)]  // 6 · 2 / 4 · 1.0 = 3
    [InlineData(1.0, CapacityRoundingRule.Floor, CapacityRankingRule.Flat, 3)]
    [InlineData(0.9, CapacityRoundingRule.Ceil, CapacityRankingRule.Position, 3)]  // 2.7 → 3
    [InlineData(0.9, CapacityRoundingRule.Floor, CapacityRankingRule.Position, 2)] // 2.7 → 2
    [InlineData(0.9, CapacityRoundingRule.Floor, CapacityRankingRule.Flat, 2)]
    [InlineData(0.9, CapacityRoundingRule.Ceil, CapacityRankingRule.Flat, 3)]      // flat keeps row 0 whole; position keeps t = 0 of both rows first
    public void Capacity_in_evaluation_rounds_and_ranks_as_asked(double factor, CapacityRoundingRule rounding, CapacityRankingRule ranking, long capacity)
    {
        using var scope = torch.NewDisposeScope();
        using var block = Block(factor, rounding, ranking, inEval: true, Choices);
        block.eval();
        var x = OneHots(B, T);
        using var _ = torch.no_grad();
        var output = block.Forward(x);
        var (expected, kept) = Naive(block, x, Choices, B, T, capacity, ranking);
        Tiny.AssertClose(expected, output.Hidden, atol: 1e-5);
        Assert.Equal(kept, output.Kept);
        Assert.Equal([6, 2, 2, 2], output.Assigned);
    }

    [Theory]
    [InlineData(CapacityRankingRule.Position)]
    [InlineData(CapacityRankingRule.Flat)]
    public void Training_applies_the_same_rules(CapacityRankingRule ranking)
    {
        using var scope = torch.NewDisposeScope();
        using var block = Block(0.9, CapacityRoundingRule.Floor, ranking, inEval: false, Choices);
        block.train(); // dropout 0 and no router noise: training differs from evaluation only by capacity here
        var x = OneHots(B, T);
        var output = block.Forward(x);
        var (expected, kept) = Naive(block, x, Choices, B, T, capacity: 2, ranking);
        Tiny.AssertClose(expected, output.Hidden, atol: 1e-5);
        Assert.Equal(kept, output.Kept);
    }

    [Fact]
    public void Without_capacity_in_evaluation_evaluation_is_dropless()
    {
        using var scope = torch.NewDisposeScope();
        using var block = Block(0.9, CapacityRoundingRule.Floor, CapacityRankingRule.Flat, inEval: false, Choices);
        block.eval();
        var x = OneHots(B, T);
        using var _ = torch.no_grad();
        var output = block.Forward(x);
        var (expected, _) = Naive(block, x, Choices, B, T, capacity: null, CapacityRankingRule.Flat);
        Tiny.AssertClose(expected, output.Hidden, atol: 1e-5);
        Assert.Equal(output.Assigned, output.Kept);
    }

    [Theory]
    [InlineData(CapacityRoundingRule.Floor, 0)] // int(1 · 2 / 4 · 1.0) = 0: makeMoE drops a lone token's assignments
    [InlineData(CapacityRoundingRule.Ceil, 1)]  // ceil(0.5) = 1: its two distinct experts both keep it
    public void One_token_in_evaluation_follows_the_rounding(CapacityRoundingRule rounding, long capacity)
    {
        using var scope = torch.NewDisposeScope();
        int[][] choices = [[2, 1]];
        using var block = Block(1.0, rounding, CapacityRankingRule.Flat, inEval: true, choices);
        block.eval();
        var x = OneHots(1, 1);
        using var _ = torch.inference_mode();
        var output = block.Forward(x);
        var (expected, kept) = Naive(block, x, choices, 1, 1, capacity, CapacityRankingRule.Flat);
        Tiny.AssertClose(expected, output.Hidden, atol: 1e-5);
        Assert.Equal(kept, output.Kept);
    }

    [Fact]
    public void A_few_tokens_in_inference_are_not_dropless_when_capacity_binds()
    {
        using var scope = torch.NewDisposeScope();
        int[][] choices = [[0, 1], [0, 1]]; // int(2 · 2 / 4) = 1: the second token loses both its experts
        using var block = Block(1.0, CapacityRoundingRule.Floor, CapacityRankingRule.Flat, inEval: true, choices);
        block.eval();
        var x = OneHots(1, 2);
        using var _ = torch.inference_mode(); // where the few-token kernels would run, were they allowed
        var output = block.Forward(x);
        var (expected, kept) = Naive(block, x, choices, 1, 2, capacity: 1, CapacityRankingRule.Flat);
        Tiny.AssertClose(expected, output.Hidden, atol: 1e-5);
        Assert.Equal(kept, output.Kept);
        Assert.Equal(0f, output.Hidden[0, 1].abs().max().item<float>());
    }

    [Fact]
    public void Capacity_in_evaluation_refuses_a_kv_cache_and_generation_recomputes()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(13);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.CapacityFactor = 1.0; o.CapacityInEvaluation = true; o.CapacityRounding = CapacityRoundingRule.Floor; }));
        model.eval();
        Assert.False(model.SupportsCachedDecoding);
        using (var cache = model.CreateCache())
        using (torch.no_grad())
        {
            var ex = Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(torch.tensor(new long[] { 1, 2 }, 1, 2), Cache: cache)));
            Assert.Contains("capacity", ex.Message);
            Assert.Equal(0, cache.Length);
        }

        long[] prompt = [1, 5, 2];
        var cached = new TokenGenerator(model).Generate(prompt, new SamplingOptions { MaxNewTokens = 12, Greedy = true });
        var recomputed = new TokenGenerator(model).Generate(prompt, new SamplingOptions { MaxNewTokens = 12, Greedy = true, UseCache = false });
        Assert.Equal(recomputed, cached);

        using var dropless = new MoeForCausalLM(Tiny.Options(o => o.CapacityFactor = 1.0)); // capacity in training only: caching is fine
        Assert.True(dropless.SupportsCachedDecoding);
    }
}
