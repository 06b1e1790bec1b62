using TorchSharp;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>
/// The expert capacity ceil(factor · N · k / E) with k = 2 at points where factor · N · k / E is not an integer, on a
/// real <see cref="SparseMoeBlock"/> in training with a planted routing: which assignments are kept, which are dropped,
/// and that a dropped assignment contributes nothing, against a naive per-token sum.
/// </summary>
public class CapacityRuleTests
{
    private const int E = 4, K = 2, N = 5, C = 16;

    /// <summary>Each token's two experts, best first (the planted routing): expert 0 is everyone's first choice.</summary>
    private static readonly int[][] Choices = [[0, 1], [0, 2], [0, 1], [0, 1], [0, 3]];

    /// <summary>The normalised gate weights of the first and second choice for logits 3 and 2: softmax([3, 2]).</summary>
    private static readonly double First = 1 / (1 + Math.Exp(-1)), Second = 1 - First;

    /// <summary>ReLU(x W1[e] + b1[e]) W2[e] + b2[e] on host arrays (the Tiny options' simple ReLU experts).</summary>
    private static double[] Expert(SparseMoeBlock block, int e, double[] x)
    {
        double[] w1 = Tiny.Values(Tiny.Param(block, "experts.fc1.weight")), b1 = Tiny.Values(Tiny.Param(block, "experts.fc1.bias"));
        double[] w2 = Tiny.Values(Tiny.Param(block, "experts.fc2.weight")), b2 = Tiny.Values(Tiny.Param(block, "experts.fc2.bias"));
        int h = b1.Length / E;
        var hidden = new double[h];
        for (int j = 0; j < h; j++)
        {
            double s = b1[e * h + j];
            for (int i = 0; i < C; i++) s += x[i] * w1[(e * C + i) * h + j];
            hidden[j] = Math.Max(0, s);
        }

        var y = new double[C];
        for (int i = 0; i < C; i++)
        {
            double s = b2[e * C + i];
            for (int j = 0; j < h; j++) s += hidden[j] * w2[(e * h + j) * C + i];
            y[i] = s;
        }

        return y;
    }

    [Theory]
    [InlineData(1.0, 3)]  // 1.0 · 5 · 2 / 4 = 2.5 → 3 (without the k: 1.25 → 2)
    [InlineData(1.3, 4)]  // 3.25 → 4 (without the k: 1.625 → 2)
    [InlineData(0.5, 2)]  // 1.25 → 2 (without the k: 0.625 → 1)
    public void Capacity_counts_k_assignments_per_token_and_drops_the_overflow(double factor, int capacity)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(11);
        var options = Tiny.Options(o => { o.NumExperts = E; o.TopK = K; o.CapacityFactor = factor; });
        using var block = new SparseMoeBlock(options);
        block.train(); // capacity binds in training only (dropout is 0, the router has no noise)

        // token t is the one-hot e_t scaled by 1, and the gate's column t holds token t's planted logits: 3 for the
        // first choice, 2 for the second, 0 otherwise
        var ones = new float[N * C];
        var gate = new float[E * C];
        for (int t = 0; t < N; t++)
        {
            ones[t * C + t] = 1f;
            gate[Choices[t][0] * C + t] = 3f;
            gate[Choices[t][1] * C + t] = 2f;
        }

        var x = torch.tensor(ones, 1, N, C); // (B = 1, T = N, C)
        using (torch.no_grad())
        {
            Tiny.Param(block, "gate.weight").copy_(torch.tensor(gate, E, C));
            Tiny.Param(block, "gate.bias").zero_();
        }

        var output = block.Forward(x);

        // assignments per expert: 0 ← all five tokens, 1 ← tokens 0, 2, 3, 2 ← token 1, 3 ← token 4
        long[] assigned = [5, 3, 1, 1];
        Assert.Equal(assigned, output.Assigned);
        Assert.Equal(assigned.Select(a => Math.Min(a, capacity)).ToArray(), output.Kept);

        // naive: an expert keeps its first `capacity` assignments in position order; a dropped one adds nothing
        var seen = new int[E];
        double[] actual = Tiny.Values(output.Hidden);
        for (int t = 0; t < N; t++)
        {
            double[] xt = Enumerable.Range(0, C).Select(i => i == t ? 1.0 : 0.0).ToArray();
            var expected = new double[C];
            for (int slot = 0; slot < K; slot++)
            {
                int e = Choices[t][slot];
                if (seen[e]++ >= capacity) continue; // dropped: zero contribution
                double gateWeight = slot == 0 ? First : Second;
                double[] y = Expert(block, e, xt);
                for (int i = 0; i < C; i++) expected[i] += gateWeight * y[i];
            }

            for (int i = 0; i < C; i++)
                Assert.True(Math.Abs(expected[i] - actual[t * C + i]) < 1e-5, $"factor {factor}, token {t}, channel {i}: expected {expected[i]}, got {actual[t * C + i]}");
        }

        // at factor 1.0 token 3 lost its first choice and token 4 too: each is its second expert's share alone
        if (capacity == 3)
        {
            Assert.True(Tiny.Values(output.Hidden[0, 3]).Zip(Expert(block, 1, Enumerable.Range(0, C).Select(i => i == 3 ? 1.0 : 0.0).ToArray()))
                .All(p => Math.Abs(p.First - Second * p.Second) < 1e-5));
        }
    }
}
