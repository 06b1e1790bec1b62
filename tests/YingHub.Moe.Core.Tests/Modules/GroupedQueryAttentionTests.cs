using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Testing;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>
/// Grouped-query attention (<see cref="MoeModelOptions.NumKeyValueHeads"/>): a real <see cref="CausalSelfAttention"/>
/// against a naive per-head attention in doubles written here (query head h reads key/value head h / (nh / nkv), as
/// Hugging Face's <c>repeat_kv</c>), the managed decoding kernel against the same, the parameter and cache shapes, and
/// cached decoding (one token, a few rows, a prefill after cached positions, left padding, the slide) against full forwards.
/// </summary>
public class GroupedQueryAttentionTests
{
    private const int C = 32, Heads = 4, Hd = C / Heads, T = 7;

    private static MoeModelOptions Options(int kvHeads, bool rope) => Tiny.Options(o =>
    {
        o.HiddenSize = C;
        o.NumHeads = Heads;
        o.NumKeyValueHeads = kvHeads;
        o.Positions = rope ? PositionEncoding.Rope : PositionEncoding.Learned;
        o.Bias = false;
    });

    /// <summary>Naive causal GQA in doubles: x (B, T, C) with the module's weights; RoPE (rotate_half, θ = 10000) written out here.</summary>
    private static double[] Reference(CausalSelfAttention attention, Tensor x, int kvHeads, bool rope)
    {
        var named = attention.named_parameters().ToDictionary(p => p.name, p => Tiny.Values(p.parameter));
        double[] w = named["qkv_proj.weight"], wo = named["o_proj.weight"], xs = Tiny.Values(x);
        int b = (int)x.size(0), t = (int)x.size(1), width = (Heads + 2 * kvHeads) * Hd, group = Heads / kvHeads;
        var output = new double[b * t * C];
        for (int bi = 0; bi < b; bi++)
        {
            // projections: (T, width) = x (T, C) W (C, width)
            var p = new double[t, width];
            for (int ti = 0; ti < t; ti++)
                for (int j = 0; j < width; j++)
                    for (int i = 0; i < C; i++) p[ti, j] += xs[(bi * t + ti) * C + i] * w[i * width + j];
            double[] Head(int ti, int offset)
            {
                var v = Enumerable.Range(0, Hd).Select(d => p[ti, offset + d]).ToArray();
                if (!rope || offset >= (Heads + kvHeads) * Hd) return v; // values are not rotated
                var r = new double[Hd];
                for (int d = 0; d < Hd; d++)
                {
                    double angle = ti * Math.Pow(10000, -2.0 * (d % (Hd / 2)) / Hd);
                    double rotated = d < Hd / 2 ? -v[d + Hd / 2] : v[d - Hd / 2];
                    r[d] = v[d] * Math.Cos(angle) + rotated * Math.Sin(angle);
                }

                return r;
            }

            var y = new double[t, C];
            for (int h = 0; h < Heads; h++)
            {
                int g = h / group;
                for (int ti = 0; ti < t; ti++)
                {
                    double[] q = Head(ti, h * Hd);
                    double[] scores = Enumerable.Range(0, ti + 1).Select(s => q.Zip(Head(s, (Heads + g) * Hd), (a, c) => a * c).Sum() / Math.Sqrt(Hd)).ToArray();
                    double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
                    for (int s = 0; s <= ti; s++)
                    {
                        double[] v = Head(s, (Heads + kvHeads + g) * Hd);
                        for (int d = 0; d < Hd; d++) y[ti, h * Hd + d] += Math.Exp(scores[s] - max) / sum * v[d];
                    }
                }
            }

            for (int ti = 0; ti < t; ti++)
                for (int j = 0; j < C; j++)
                    for (int i = 0; i < C; i++) output[(bi * t + ti) * C + j] += y[ti, i] * wo[i * C + j];
        }

        return output;
    }

    private static void AssertClose(double[] expected, Tensor actual, double atol = 1e-5)
    {
        double[] a = Tiny.Values(actual);
        Assert.Equal(expected.Length, a.Length);
        for (int i = 0; i < a.Length; i++) Assert.True(Math.Abs(expected[i] - a[i]) <= atol + 1e-4 * Math.Abs(expected[i]), $"element {i}: expected {expected[i]}, got {a[i]}");
    }

    [Theory]
    [InlineData(1, false)]
    [InlineData(2, false)]
    [InlineData(2, true)]
    [InlineData(1, true)]
    public void Full_and_cached_forwards_equal_naive_grouped_attention_in_doubles(int kvHeads, bool rope)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(61 + kvHeads);
        var options = Options(kvHeads, rope);
        using var attention = new CausalSelfAttention(options);
        using var rotary = rope ? new RotaryEmbedding(Hd, options.ContextLength, options.RopeTheta) : null;
        attention.eval();
        var x = torch.randn(2, T, C) * 2;
        double[] expected = Reference(attention, x, kvHeads, rope);
        using var noGrad = torch.no_grad();
        AssertClose(expected, attention.Forward(x, rotary, null, 0));

        // cached: a prefill of 3 positions, then one position a step for both rows (the managed kernel), then a prefill of 2 after cached positions (libtorch with a mask)
        using var cache = new KvCache(1, 2, kvHeads, options.ContextLength, Hd, ScalarType.Float32, torch.CPU);
        var parts = new List<Tensor>();
        foreach (var (start, length) in new[] { (0, 3), (3, 1), (4, 1), (5, 2) })
        {
            using (torch.inference_mode()) parts.Add(attention.Forward(x.narrow(1, start, length), rotary, cache, 0).clone());
            cache.Advance(length);
        }

        AssertClose(expected, torch.cat(parts, 1));
        Assert.Equal([2L, kvHeads, options.ContextLength, Hd], cache.Buffers(0).Keys.shape); // the cache holds the key/value heads only
    }

    [SimdKernelTheory]
    [InlineData(1, 0, false)]
    [InlineData(2, 4, true)]
    public void The_decoding_kernel_reads_key_value_head_h_over_group_for_query_head_h(int kvHeads, int position, bool rotary)
    {
        using var scope = torch.NewDisposeScope();
        const int rows = 2, length = 6;
        torch.manual_seed(70 + position);
        int width = (Heads + 2 * kvHeads) * Hd, group = Heads / kvHeads;
        var qkv = torch.randn(rows, 1, width) * 2;
        var keys = torch.randn(rows, kvHeads, length, Hd);
        var values = torch.randn(rows, kvHeads, length, Hd);
        (Tensor, Tensor)? tables = rotary ? (torch.randn(length, Hd).cos(), torch.randn(length, Hd).sin()) : null;
        var k64 = keys.to(ScalarType.Float64).clone();
        var v64 = values.to(ScalarType.Float64).clone();
        var src = qkv.to(ScalarType.Float64).squeeze(1);                                                   // (B, width)
        Tensor Rot(Tensor t) => rotary // t (B, n, hd)
            ? t * tables!.Value.Item1[position].to(ScalarType.Float64) + torch.cat([-t[.., .., (Hd / 2)..], t[.., .., ..(Hd / 2)]], -1) * tables!.Value.Item2[position].to(ScalarType.Float64)
            : t;
        var q = Rot(src[.., ..(Heads * Hd)].reshape(rows, Heads, Hd));                                     // (B, nh, hd)
        k64[.., .., position] = Rot(src[.., (Heads * Hd)..((Heads + kvHeads) * Hd)].reshape(rows, kvHeads, Hd));
        v64[.., .., position] = src[.., ((Heads + kvHeads) * Hd)..].reshape(rows, kvHeads, Hd);
        var expected = torch.zeros(rows, 1, Heads * Hd, dtype: ScalarType.Float64);
        for (int h = 0; h < Heads; h++) // explicit loop over query heads: head h reads key/value head h / group
        {
            var kh = k64[.., h / group, ..(position + 1)];                                                   // (B, S, hd)
            var vh = v64[.., h / group, ..(position + 1)];
            var p = torch.einsum("bd,bsd->bs", q[.., h], kh).div(Math.Sqrt(Hd)).softmax(-1);
            expected[.., 0, (h * Hd)..((h + 1) * Hd)] = torch.einsum("bs,bsd->bd", p, vh);
        }

        Tensor y;
        using (torch.inference_mode())
        {
            Assert.True(AttentionRow.Applies(qkv, keys, values, position, tables, Heads));
            Assert.False(AttentionRow.Applies(qkv, keys, values, position, tables, Heads + 1)); // not a multiple of the key/value heads
            y = AttentionRow.Attend(qkv, keys, values, position, tables, queryHeads: Heads);
        }

        Tiny.AssertClose(expected, y, atol: 1e-5);
        Tiny.AssertClose(k64, keys, atol: 1e-5); // the new key (rotated) and value are cached, in the key/value heads
        Tiny.AssertClose(v64, values, atol: 1e-6);
    }

    [Fact]
    public void The_projection_and_the_cache_have_the_key_value_heads_shapes()
    {
        using var scope = torch.NewDisposeScope();
        using var model = new MoeForCausalLM(Options(2, rope: true));
        var shapes = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal([C, (Heads + 2 * 2) * Hd], shapes["layers.0.self_attn.qkv_proj.weight"]); // q: nh·hd, k and v: nkv·hd each
        Assert.Equal([C, C], shapes["layers.0.self_attn.o_proj.weight"]);
        using var mha = new MoeForCausalLM(Options(Heads, rope: true));
        Assert.Equal(model.ParameterCount + 2 * 2 * Hd * C * 2, mha.ParameterCount); // 2 layers × (k, v) × 2 fewer heads
        using var cache = model.CreateCache(3);
        Assert.Equal([3L, 2, model.Options.ContextLength, Hd], cache.Buffers(1).Values.shape);
        using var other = mha.CreateCache(3);
        using var noGrad = torch.no_grad();
        var ex = Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(torch.zeros(3, 1, dtype: ScalarType.Int64), Cache: other)));
        Assert.Contains("key/value heads", ex.Message);
    }

    [Fact]
    public void Num_key_value_heads_must_divide_the_heads_and_keeps_its_json_key()
    {
        foreach (int bad in new[] { 0, 3, 8, -1 })
        {
            var errors = Options(bad, rope: false).GetValidationErrors();
            var error = Assert.Single(errors);
            Assert.Equal(nameof(MoeModelOptions.NumKeyValueHeads), error.Field);
            Assert.Contains("divisor of NumHeads = 4", error.Message);
        }

        Assert.Empty(Options(4, rope: false).GetValidationErrors());
        Assert.Empty(Tiny.Options().GetValidationErrors()); // null: NumHeads
        Assert.Equal(2, Tiny.Options().KeyValueHeads);
        string json = JsonSerializer.Serialize(Options(2, rope: false));
        Assert.Contains("\"num_key_value_heads\":2", json);
        Assert.Equal(2, JsonSerializer.Deserialize<MoeModelOptions>(json)!.NumKeyValueHeads);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Generation_with_the_cache_equals_full_forwards_batched_padded_and_past_the_context(int kvHeads)
    {
        torch.manual_seed(80 + kvHeads);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.HiddenSize = C; o.NumHeads = Heads; o.NumKeyValueHeads = kvHeads; o.Positions = PositionEncoding.Rope; o.ContextLength = 10; }));
        model.eval();
        var generator = new TokenGenerator(model);
        long[][] prompts = [[1, 2, 3, 4, 5], [5], [7, 7, 3]];
        var greedy = new SamplingOptions { Greedy = true, MaxNewTokens = 5 };
        var singles = prompts.Select(p => generator.Generate(p, greedy)).ToArray();
        var batch = generator.GenerateBatch(prompts, greedy); // left-padded prompts, a few rows a step
        var recomputed = generator.GenerateBatch(prompts, new SamplingOptions { Greedy = true, MaxNewTokens = 5, UseCache = false });
        for (int b = 0; b < 3; b++)
        {
            Assert.Equal(singles[b], batch[b]);
            Assert.Equal(singles[b], recomputed[b]);
        }

        // past the context the cache slides: every step's logits equal a fresh forward over the window the cache holds
        var seen = new List<(long[] Tokens, Tensor Logits)>();
        var sliding = new SamplingOptions { MaxNewTokens = 16, Seed = 3, SlideKeep = 0.5 };
        sliding.LogitsProcessors.Add((logits, tokens) =>
        {
            seen.Add((tokens[0].ToArray(), logits[0].clone().DetachFromDisposeScope()));
            return logits;
        });
        generator.Generate([1, 2, 3], sliding);
        int window = 3;
        using var noGrad = torch.no_grad();
        for (int i = 0; i < seen.Count; i++)
        {
            if (i > 0) window = window == 10 ? 5 : window + 1;
            long[] all = seen[i].Tokens;
            var fresh = model.call(new CausalLMInput(torch.tensor(all[^window..], 1, window))).Logits[0, -1];
            Tiny.AssertClose(fresh, seen[i].Logits, atol: 1e-5);
            seen[i].Logits.Dispose();
        }
    }
}
