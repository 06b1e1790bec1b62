using TorchSharp;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

public class AttentionDropoutTests
{
    /// <summary>
    /// Naive causal attention in doubles, one query row at a time: softmax over the keys at or before the query's
    /// position (queries at start..start+T−1), each probability multiplied by <paramref name="keep"/>[b, h, i, j]
    /// (null: no dropout). q (B, H, T, D), k and v (B, H, S, D).
    /// </summary>
    private static double[,,,] Reference(Tensor q, Tensor k, Tensor v, long start, double[,,,]? keep)
    {
        long bs = q.shape[0], hs = q.shape[1], t = q.shape[2], d = q.shape[3], s = k.shape[2];
        double[] qv = Tiny.Values(q), kv = Tiny.Values(k), vv = Tiny.Values(v);
        var y = new double[bs, hs, t, d];
        for (long b = 0; b < bs; b++)
        for (long h = 0; h < hs; h++)
        for (long i = 0; i < t; i++)
        {
            long visible = start + i + 1; // keys 0..start+i
            var scores = new double[visible];
            for (long j = 0; j < visible; j++)
            {
                double dot = 0;
                for (long e = 0; e < d; e++) dot += qv[((b * hs + h) * t + i) * d + e] * kv[((b * hs + h) * s + j) * d + e];
                scores[j] = dot / Math.Sqrt(d);
            }

            double max = scores.Max(), sum = scores.Sum(x => Math.Exp(x - max));
            for (long j = 0; j < visible; j++)
            {
                double prob = Math.Exp(scores[j] - max) / sum * (keep?[b, h, i, j] ?? 1.0);
                for (long e = 0; e < d; e++) y[b, h, i, e] += prob * vv[((b * hs + h) * s + j) * d + e];
            }
        }

        return y;
    }

    private static double[] Flatten(double[,,,] a) => a.Cast<double>().ToArray();

    [Theory]
    [InlineData(0L, 4L)] // training: queries and keys are the same 4 positions
    [InlineData(2L, 5L)] // queries at positions 2..4 after 2 earlier keys
    public void Dropout_attention_drops_causal_probabilities_with_the_uniform_mask_and_rescales(long start, long keys)
    {
        using var scope = torch.NewDisposeScope();
        const double p = 0.4;
        long b = 2, h = 2, t = keys - start, d = 3;
        torch.manual_seed(11);
        var q = torch.randn(b, h, t, d);
        var k = torch.randn(b, h, keys, d);
        var v = torch.randn(b, h, keys, d);

        torch.manual_seed(99);
        var y = CausalSelfAttention.DropoutAttention(q, k, v, start, p);

        // the library's dropout keeps an element when its uniform draw is >= p: the same draws, taken here directly
        torch.manual_seed(99);
        double[] uniform = Tiny.Values(torch.rand(b, h, t, keys));
        var keep = new double[b, h, t, keys];
        for (int i = 0; i < uniform.Length; i++)
            keep[i / (h * t * keys), i / (t * keys) % h, i / keys % t, i % keys] = uniform[i] >= p ? 1 / (1 - p) : 0;
        Assert.Contains(0.0, keep.Cast<double>()); // some probabilities are dropped in this draw
        double[] expected = Flatten(Reference(q, k, v, start, keep)), actual = Tiny.Values(y);
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++) Assert.True(Math.Abs(expected[i] - actual[i]) < 1e-5, $"element {i}: expected {expected[i]}, got {actual[i]}");
    }

    [Fact]
    public void Dropout_attention_is_unbiased_over_many_draws()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        var q = torch.randn(1, 2, 5, 4);
        var k = torch.randn(1, 2, 5, 4);
        var v = torch.randn(1, 2, 5, 4);
        const int draws = 4000;
        var sum = torch.zeros(1, 2, 5, 4, dtype: ScalarType.Float64);
        var sumOfSquares = torch.zeros(1, 2, 5, 4, dtype: ScalarType.Float64);
        for (int r = 0; r < draws; r++)
        {
            using var inner = torch.NewDisposeScope();
            var y = CausalSelfAttention.DropoutAttention(q, k, v, 0, 0.3).to(ScalarType.Float64);
            sum.add_(y);
            sumOfSquares.add_(y * y);
        }

        double[] expected = Flatten(Reference(q, k, v, 0, null)), mean = Tiny.Values(sum / draws);
        double[] variance = Tiny.Values(sumOfSquares / draws - (sum / draws).pow(2));
        for (int i = 0; i < expected.Length; i++)
        {
            // 4.5 standard errors of the mean, estimated from the draws themselves
            double tolerance = 4.5 * Math.Sqrt(Math.Max(variance[i], 0) / draws) + 1e-6;
            Assert.True(Math.Abs(expected[i] - mean[i]) < tolerance, $"element {i}: expected {expected[i]}, mean {mean[i]} ± {tolerance}");
        }
    }

    [Fact]
    public void Rotary_tables_made_under_inference_mode_still_train()
    {
        using var scope = torch.NewDisposeScope();
        RotaryEmbedding rope;
        using (torch.inference_mode()) rope = new RotaryEmbedding(headDim: 4, maxPositions: 8, theta: 10000); // e.g. first made while generating
        using (rope)
        {
            var x = torch.randn(1, 2, 3, 4).requires_grad_();
            rope.Apply(x, start: 1).pow(2).sum().backward(); // saves the tables for backward: an inference tensor would throw here
            Assert.NotNull(x.grad);
        }
    }

    [Fact]
    public void In_training_with_attention_dropout_no_position_sees_a_later_token()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        // attention dropout only: the experts' output dropout draws its mask in the experts' sorted token order, which
        // depends on every token's routing, so with one seed its masks would differ between the two inputs anyway
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.AttentionDropout = 0.5; o.Dropout = 0; }));
        model.train();
        var ids = torch.tensor(new long[] { 1, 5, 7, 2, 9, 4 }, 1, 6);
        var changed = torch.tensor(new long[] { 1, 5, 7, 2, 9, 11 }, 1, 6); // only the last token differs

        torch.manual_seed(42);
        using var a = model.call(new CausalLMInput(ids, RouterStatistics: false));
        torch.manual_seed(42);
        using var b = model.call(new CausalLMInput(changed, RouterStatistics: false));

        Tiny.AssertClose(a.Logits[.., ..5], b.Logits[.., ..5], atol: 1e-6, rtol: 0);
        Assert.False(Tiny.Values(a.Logits[.., 5]).SequenceEqual(Tiny.Values(b.Logits[.., 5]))); // the last position does see it
    }
}
