using TorchSharp;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Testing;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Kernels;

public class AttentionRowTests
{
    [SimdKernelTheory]
    [InlineData(0, false)] // the first position attends to itself only
    [InlineData(3, false)]
    [InlineData(6, false)] // the last slot of the cache
    [InlineData(0, true)]
    [InlineData(4, true)]
    public void One_step_equals_naive_attention_in_doubles_and_writes_its_key_and_value(int position, bool rotary)
    {
        using var scope = torch.NewDisposeScope();
        const int heads = 3, hd = 10, length = 7, c = heads * hd; // hd = 10: vector blocks and scalar tails
        torch.manual_seed(position * 2 + (rotary ? 1 : 0));
        var qkv = torch.randn(1, 1, 3 * c) * 2;                   // large enough that the softmax is far from uniform
        var keys = torch.randn(1, heads, length, hd);
        var values = torch.randn(1, heads, length, hd);
        (Tensor, Tensor)? tables = rotary ? (torch.randn(length, hd).cos(), torch.randn(length, hd).sin()) : null;
        double[] q = Values(qkv)[..c], k = Values(qkv)[c..(2 * c)], v = Values(qkv)[(2 * c)..];
        double[] cachedK = Values(keys), cachedV = Values(values);
        double[]? cos = rotary ? Values(tables!.Value.Item1) : null, sin = rotary ? Values(tables!.Value.Item2) : null;

        Tensor y;
        using (torch.inference_mode())
        {
            Assert.True(AttentionRow.Applies(qkv, keys, values, position, tables));
            y = AttentionRow.Attend(qkv, keys, values, position, tables);
        }

        double[] actual = Values(y), keysAfter = Values(keys), valuesAfter = Values(values);
        for (int h = 0; h < heads; h++)
        {
            double[] qh = Rotate(q[(h * hd)..((h + 1) * hd)], cos, sin, position), kh = Rotate(k[(h * hd)..((h + 1) * hd)], cos, sin, position);
            double[] Key(int s) => s == position ? kh : cachedK[((h * length + s) * hd)..((h * length + s + 1) * hd)];
            double[] Value(int s) => s == position ? v[(h * hd)..((h + 1) * hd)] : cachedV[((h * length + s) * hd)..((h * length + s + 1) * hd)];
            double[] scores = Enumerable.Range(0, position + 1).Select(s => qh.Zip(Key(s), (a, b) => a * b).Sum() / Math.Sqrt(hd)).ToArray();
            double max = scores.Max(), sum = scores.Sum(s => Math.Exp(s - max));
            for (int d = 0; d < hd; d++)
            {
                double expected = Enumerable.Range(0, position + 1).Sum(s => Math.Exp(scores[s] - max) / sum * Value(s)[d]);
                Assert.True(Math.Abs(actual[h * hd + d] - expected) <= 1e-5 * (1 + Math.Abs(expected)), $"head {h}, dim {d}: {actual[h * hd + d]} vs {expected}");
                Assert.Equal(kh[d], keysAfter[(h * length + position) * hd + d], 5);                // the rotated key is cached
                Assert.Equal(v[h * hd + d], valuesAfter[(h * length + position) * hd + d], 6);      // and the value
            }

            for (int s = position + 1; s < length; s++) // later slots untouched
                Assert.Equal(cachedK[((h * length + s) * hd)..((h * length + s + 1) * hd)], keysAfter[((h * length + s) * hd)..((h * length + s + 1) * hd)]);
        }
    }

    [SimdKernelTheory]
    [InlineData(0, false)]
    [InlineData(5, true)]
    public void A_batched_step_equals_naive_attention_in_doubles_for_every_row(int position, bool rotary)
    {
        using var scope = torch.NewDisposeScope();
        const int rows = 3, heads = 2, hd = 10, length = 6, c = heads * hd;
        torch.manual_seed(40 + position);
        var qkv = torch.randn(rows, 1, 3 * c) * 2;               // (B, 1, 3C)
        var keys = torch.randn(rows, heads, length, hd);          // (B, nh, Tmax, hd)
        var values = torch.randn(rows, heads, length, hd);
        (Tensor, Tensor)? tables = rotary ? (torch.randn(length, hd).cos(), torch.randn(length, hd).sin()) : null;
        // the reference in float64 tensors: rotate q and k at the position, put k and v in the cache, softmax(q Kᵀ/√hd) V
        var q64 = qkv.to(ScalarType.Float64).view(rows, 3, heads, hd).unbind(1);               // 3 × (B, nh, hd)
        Tensor Rot(Tensor t) => rotary
            ? t * tables!.Value.Item1[position].to(ScalarType.Float64) + torch.cat([-t[.., .., (hd / 2)..], t[.., .., ..(hd / 2)]], -1) * tables!.Value.Item2[position].to(ScalarType.Float64)
            : t;
        var k64 = keys.to(ScalarType.Float64).clone();
        var v64 = values.to(ScalarType.Float64).clone();
        k64[.., .., position] = Rot(q64[1]);
        v64[.., .., position] = q64[2];
        var scores = torch.einsum("bhd,bhsd->bhs", Rot(q64[0]), k64[.., .., ..(position + 1)]) / Math.Sqrt(hd); // (B, nh, S)
        var expected = torch.einsum("bhs,bhsd->bhd", scores.softmax(-1), v64[.., .., ..(position + 1)]).reshape(rows, 1, c); // (B, 1, C)

        Tensor y;
        using (torch.inference_mode())
        {
            Assert.True(AttentionRow.Applies(qkv, keys, values, position, tables));
            y = AttentionRow.Attend(qkv, keys, values, position, tables);
        }

        Assert.True(expected.allclose(y.to(ScalarType.Float64), rtol: 1e-5, atol: 1e-5), $"max difference {(expected - y.to(ScalarType.Float64)).abs().max().item<double>()}");
        Assert.True(k64.allclose(keys.to(ScalarType.Float64), rtol: 1e-5, atol: 1e-6), "every row's rotated key is cached at the position");
        Assert.True(v64.allclose(values.to(ScalarType.Float64), rtol: 0, atol: 0), "every row's value is cached at the position");
    }

    [SimdKernelFact]
    public void Several_positions_another_type_or_a_full_cache_are_left_to_libtorch()
    {
        using var scope = torch.NewDisposeScope();
        var keys = torch.zeros(1, 2, 4, 8);
        var values = torch.zeros(1, 2, 4, 8);
        using var inference = torch.inference_mode();
        Assert.True(AttentionRow.Applies(torch.randn(1, 1, 48), keys, values, 3, null));
        Assert.False(AttentionRow.Applies(torch.randn(1, 2, 48), keys, values, 3, null));                          // two positions
        Assert.False(AttentionRow.Applies(torch.randn(1, 1, 48), keys, values, 4, null));                          // no room left
        Assert.False(AttentionRow.Applies(torch.randn(1, 1, 48, dtype: ScalarType.Float64), keys, values, 3, null)); // another type
        Assert.False(AttentionRow.Applies(torch.randn(1, 1, 48), torch.zeros(2, 2, 4, 8), torch.zeros(2, 2, 4, 8), 3, null)); // one row for a cache of two
        Assert.True(AttentionRow.Applies(torch.randn(2, 1, 48), torch.zeros(2, 2, 4, 8), torch.zeros(2, 2, 4, 8), 3, null));  // a batch of two
        Assert.False(AttentionRow.Applies(torch.randn(2, 2, 48), torch.zeros(2, 2, 4, 8), torch.zeros(2, 2, 4, 8), 3, null)); // two positions per row
        Assert.False(AttentionRow.Applies(torch.randn(1, 1, 48), keys, values, 3, (torch.zeros(3, 8), torch.zeros(3, 8)))); // tables too short
    }

    /// <summary>x · cos + rotate_half(x) · sin at <paramref name="position"/>, or x without tables.</summary>
    private static double[] Rotate(double[] x, double[]? cos, double[]? sin, int position)
    {
        if (cos is null) return x;
        int hd = x.Length, half = hd / 2;
        return Enumerable.Range(0, hd).Select(i => x[i] * cos[position * hd + i] + (i < half ? -x[i + half] : x[i - half]) * sin![position * hd + i]).ToArray();
    }

    private static double[] Values(Tensor t)
    {
        using var d = t.detach().to(ScalarType.Float64).contiguous();
        return d.data<double>().ToArray();
    }
}
