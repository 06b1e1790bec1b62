using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>
/// Prefix-LM attention (<see cref="CausalLMInput.PrefixLength"/>): the mask by construction on small cases, a real
/// attention layer against a naive masked attention written here, which positions of a real model react to which
/// tokens, and KV-cached decoding after a prefix against the full forward.
/// </summary>
public class PrefixLmTests
{
    private const int C = 16, Heads = 2, Hd = C / Heads;

    [Fact]
    public void The_mask_is_bidirectional_over_the_prefix_and_causal_after_it()
    {
        using var scope = torch.NewDisposeScope();
        // row 0: prefix of 3 in 5 positions; row 1: prefix 0 (causal); row 2: prefix 5 (all bidirectional)
        var mask = ForwardMask.Build(null, 3, 5, null, torch.CPU, torch.tensor(new long[] { 3, 0, 5 }));
        bool[,] row0 =
        {
            { true, true, true, false, false },
            { true, true, true, false, false },
            { true, true, true, false, false },
            { true, true, true, true, false },
            { true, true, true, true, true },
        };
        AssertMask(row0, mask.Allowed[0, 0]);
        AssertMask(Causal(5), mask.Allowed[1, 0]);
        AssertMask(Full(5), mask.Allowed[2, 0]);
        Assert.All(Tiny.Values(mask.QueryReal), v => Assert.Equal(1.0, v));
        Assert.Equal(new long[] { 0, 1, 2, 3, 4 }, mask.Positions[0].data<long>().ToArray());
    }

    [Fact]
    public void Padding_inside_a_prefix_is_still_seen_by_nothing()
    {
        using var scope = torch.NewDisposeScope();
        // one row: a pad, then four real tokens, prefix of 3 columns (the pad and two real tokens)
        var real = torch.tensor(new[] { false, true, true, true, true }).reshape(1, 5);
        var mask = ForwardMask.Build(real, 1, 5, null, torch.CPU, torch.tensor(new long[] { 3 }));
        bool[,] expected =
        {
            { true, true, true, false, false }, // the pad query: what it sees does not matter, its output is zeroed
            { false, true, true, false, false },
            { false, true, true, false, false },
            { false, true, true, true, false },
            { false, true, true, true, true },
        };
        AssertMask(expected, mask.Allowed[0, 0]);
        Assert.Equal(new[] { 0.0, 1, 1, 1, 1 }, Tiny.Values(mask.QueryReal));
        Assert.Equal(new long[] { 0, 0, 1, 2, 3 }, mask.Positions[0].data<long>().ToArray());
    }

    /// <summary>
    /// Naive attention of a real <see cref="CausalSelfAttention"/>: per head softmax(q kᵀ / √hd) v where key k is
    /// visible to query q iff k ≤ q or both are inside the row's prefix.
    /// </summary>
    private static Tensor Reference(CausalSelfAttention attention, Tensor x, long[] prefix)
    {
        var named = attention.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var qkv = x.matmul(named["qkv_proj.weight"]) + named["qkv_proj.bias"];                 // (B, T, 3C)
        long b = x.size(0), t = x.size(1);
        var hidden = torch.zeros(b, t, t, dtype: ScalarType.Bool);                              // (B, T, T)
        for (int r = 0; r < b; r++)
            for (int q = 0; q < t; q++)
                for (int k = 0; k < t; k++)
                    hidden[r, q, k] = !(k <= q || (k < prefix[r] && q < prefix[r]));
        var heads = Enumerable.Range(0, Heads).Select(h =>
        {
            var q = qkv.narrow(-1, h * Hd, Hd);
            var k = qkv.narrow(-1, C + h * Hd, Hd);
            var v = qkv.narrow(-1, 2 * C + h * Hd, Hd);
            var probs = q.matmul(k.transpose(1, 2)).div(Math.Sqrt(Hd)).masked_fill(hidden, double.NegativeInfinity).softmax(-1); // (B, T, T)
            return probs.matmul(v);                                                              // (B, T, hd)
        }).ToList();
        return torch.cat(heads, -1).matmul(named["o_proj.weight"]) + named["o_proj.bias"];     // (B, T, C)
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Attention_with_a_prefix_matches_naive_masked_attention(bool trainingWithoutDropout)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(41);
        using var attention = new CausalSelfAttention(Tiny.Options(o => { o.BiasInit = BiasInitScheme.Uniform; o.AttentionDropout = 0; o.Dropout = 0; }));
        if (trainingWithoutDropout) attention.train(); else attention.eval();
        long[] prefix = [4, 0, 6];
        var x = torch.randn(3, 6, C) * 3;
        var mask = ForwardMask.Build(null, 3, 6, null, torch.CPU, torch.tensor(prefix));
        using var noGrad = torch.no_grad();
        Tiny.AssertClose(Reference(attention, x, prefix), attention.Forward(x, null, null, 0, mask), atol: 1e-5);
    }

    [Fact]
    public void Attention_dropout_path_with_a_prefix_keeps_the_prefix_visible()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(42);
        using var attention = new CausalSelfAttention(Tiny.Options(o => { o.AttentionDropout = 0.5; }));
        attention.train();
        var x = torch.randn(1, 6, C);
        var mask = ForwardMask.Build(null, 1, 6, null, torch.CPU, torch.tensor(new long[] { 4 }));
        using var noGrad = torch.no_grad();
        // query 0 must depend on key 3 (inside the prefix): change x[3] and position 0's output changes (dropout redrawn from the same seed)
        torch.manual_seed(7);
        var before = attention.Forward(x, null, null, 0, mask);
        var changed = x.clone();
        changed[0, 3] = changed[0, 3] + 5;
        torch.manual_seed(7);
        var after = attention.Forward(changed, null, null, 0, mask);
        Assert.True((before[0, 0] - after[0, 0]).abs().max().item<float>() > 1e-4);
        // and query 4 (after the prefix) must not depend on key 5
        var later = x.clone();
        later[0, 5] = later[0, 5] + 5;
        torch.manual_seed(7);
        var third = attention.Forward(later, null, null, 0, mask);
        Tiny.AssertClose(before[0, ..5], third[0, ..5], atol: 1e-6);
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void A_model_position_reacts_to_later_tokens_only_inside_the_prefix(PositionEncoding positions)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(43);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.Positions = positions));
        model.eval();
        using var noGrad = torch.no_grad();
        const int p = 4;
        long[] row = [3, 7, 1, 9, 4, 2, 8, 5];
        var prefix = torch.tensor(new long[] { p });
        var baseLogits = model.call(new CausalLMInput(torch.tensor(row, 1, 8), PrefixLength: prefix)).Logits[0]; // (T, V)
        for (int changed = 0; changed < row.Length; changed++)
        {
            long[] other = (long[])row.Clone();
            other[changed] = (other[changed] + 5) % 19;
            var logits = model.call(new CausalLMInput(torch.tensor(other, 1, 8), PrefixLength: prefix)).Logits[0];
            for (int j = 0; j < row.Length; j++)
            {
                bool sees = changed <= j || (changed < p && j < p);
                double diff = (baseLogits[j] - logits[j]).abs().max().item<float>();
                if (sees) Assert.True(diff > 1e-6, $"position {j} should see token {changed}");
                else Assert.True(diff < 1e-6, $"position {j} should not see token {changed} (diff {diff})");
            }
        }

        // a prefix of 0 or 1 is the causal forward
        var causal = model.call(new CausalLMInput(torch.tensor(row, 1, 8))).Logits;
        Tiny.AssertClose(causal, model.call(new CausalLMInput(torch.tensor(row, 1, 8), PrefixLength: torch.tensor(new long[] { 1 }))).Logits, atol: 1e-6);
    }

    [Theory]
    [InlineData(PositionEncoding.Learned)]
    [InlineData(PositionEncoding.Rope)]
    public void Kv_cache_decoding_after_a_prefix_gives_the_full_forward_logits(PositionEncoding positions)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(44);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.Positions = positions));
        model.eval();
        using var noGrad = torch.no_grad();
        long[] row = [3, 7, 1, 9, 4, 2, 8, 5, 11, 6];
        const int p = 5;
        var full = model.call(new CausalLMInput(torch.tensor(row, 1, row.Length), PrefixLength: torch.tensor(new long[] { p }))).Logits[0]; // (T, V)
        using var cache = model.CreateCache();
        var prefill = model.call(new CausalLMInput(torch.tensor(row[..p], 1, p), Cache: cache, PrefixLength: torch.tensor(new long[] { p }))).Logits[0];
        Assert.False(cache.HasPadding);
        Tiny.AssertClose(full[..p], prefill, atol: 1e-5);
        for (int j = p; j < row.Length; j++)
        {
            var step = model.call(new CausalLMInput(torch.tensor(new[] { row[j] }, 1, 1), Cache: cache)).Logits[0, 0];
            Tiny.AssertClose(full[j], step, atol: 1e-5);
        }
    }

    [Fact]
    public void A_bad_prefix_is_refused_with_its_value()
    {
        using var scope = torch.NewDisposeScope();
        using var model = new MoeForCausalLM(Tiny.Options());
        model.eval();
        using var noGrad = torch.no_grad();
        var ids = torch.tensor(new long[] { 1, 2, 3, 4, 5, 6 }, 2, 3);
        Assert.Contains("outside [0, T = 3]", Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(ids, PrefixLength: torch.tensor(new long[] { 1, 4 })))).Message);
        Assert.Contains("(B) = [2]", Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(ids, PrefixLength: torch.tensor(new long[] { 1 })))).Message);
        Assert.Contains("int64", Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(ids, PrefixLength: torch.tensor(new[] { 1, 2 })))).Message);
        using var cache = model.CreateCache(batch: 2);
        model.call(new CausalLMInput(ids, Cache: cache));
        Assert.Contains("without cached positions", Assert.Throws<ArgumentException>(() => model.call(new CausalLMInput(ids, Cache: cache, PrefixLength: torch.tensor(new long[] { 1, 1 })))).Message);
    }

    private static bool[,] Causal(int t)
    {
        var m = new bool[t, t];
        for (int q = 0; q < t; q++) for (int k = 0; k <= q; k++) m[q, k] = true;
        return m;
    }

    private static bool[,] Full(int t)
    {
        var m = new bool[t, t];
        for (int q = 0; q < t; q++) for (int k = 0; k < t; k++) m[q, k] = true;
        return m;
    }

    private static void AssertMask(bool[,] expected, Tensor actual)
    {
        var values = actual.contiguous().data<bool>().ToArray();
        int t = expected.GetLength(1);
        for (int q = 0; q < expected.GetLength(0); q++)
            for (int k = 0; k < t; k++)
                Assert.True(expected[q, k] == values[q * t + k], $"query {q}, key {k}: expected {(expected[q, k] ? "visible" : "hidden")}");
    }
}
