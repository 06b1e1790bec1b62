using TorchSharp;
using YingHub.Moe.Core.Quantization;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Quantization;

public sealed class BlockQuantizationTests
{
    /// <summary>bitsandbytes' published NF4 table (bitsandbytes/functional.py, get_4bit_type("nf4")), copied here by hand.</summary>
    private static readonly double[] PublishedNf4 =
    [
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
        -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    ];

    [Fact]
    public void Nf4_codes_equal_the_published_table_and_the_normal_quantiles_qlora_defines()
    {
        Assert.Equal(PublishedNf4.Select(v => (float)v), BlockQuantization.Nf4Codes);

        // QLoRA (appendix E) / bitsandbytes create_normal_map: offset = 1 - ½(1/32 + 1/30); 8 positive quantiles of N(0, 1)
        // at linspace(offset, 0.5, 9) without its last point, 7 negative ones at linspace(offset, 0.5, 8) without its
        // last, an exact 0; sorted and divided by the largest
        double offset = 1 - 0.5 * (1.0 / 32 + 1.0 / 30);
        Assert.Equal(0.9677083, offset, 7);
        static double[] Linspace(double from, double to, int n) => Enumerable.Range(0, n).Select(i => from + (to - from) * i / (n - 1)).ToArray();
        double[] Ppf(double[] p)
        {
            using var probs = torch.tensor(p, dtype: ScalarType.Float64);
            using var q = torch.special.erfinv(probs * 2 - 1) * Math.Sqrt(2);          // Φ⁻¹(p) = √2 · erfinv(2p − 1)
            return q.data<double>().ToArray();
        }

        var positive = Ppf(Linspace(offset, 0.5, 9)[..^1]);
        var negative = Ppf(Linspace(offset, 0.5, 8)[..^1]).Select(v => -v);
        var values = positive.Concat(negative).Append(0.0).Order().ToArray();
        double max = values.Max();
        var computed = values.Select(v => v / max).ToArray();
        Assert.Equal(16, computed.Length);
        for (int i = 0; i < 16; i++)
        {
            Assert.Equal(computed[i], BlockQuantization.Nf4Codes[i], 6);
            Assert.Equal(PublishedNf4[i], computed[i], 6);
        }
    }

    [Theory]
    [InlineData(37, 50, 64)] // 1850 elements: the last block is padded
    [InlineData(4, 64, 64)]
    [InlineData(3, 11, 6)]
    public void Nf4_round_trip_error_stays_within_half_the_widest_code_gap_times_the_block_absmax(int rows, int cols, int blockSize)
    {
        var w = RandomWeights(rows, cols, seed: rows);
        double halfGap = Enumerable.Range(0, 15).Max(i => (PublishedNf4[i + 1] - PublishedNf4[i]) / 2); // 0.7230 → 1.0: 0.1385
        using var weight = torch.tensor(w, rows, cols);
        var (codes, absmax) = BlockQuantization.Quantize(weight, QuantizationKind.Nf4, blockSize);
        using (codes)
        using (absmax)
        using (var back = BlockQuantization.Dequantize(codes, absmax, QuantizationKind.Nf4, blockSize, 0, w.Length))
        {
            Assert.Equal(ScalarType.Byte, codes.dtype);
            long blocks = (w.Length + blockSize - 1) / blockSize;
            Assert.Equal([blocks * blockSize / 2], codes.shape);
            var deq = back.data<float>().ToArray();
            var blockMax = NaiveAbsmax(w, blockSize);
            Assert.Equal(blockMax, absmax.data<float>().ToArray());
            double worst = 0;
            for (int i = 0; i < w.Length; i++)
            {
                double a = blockMax[i / blockSize], err = Math.Abs(w[i] - deq[i]);
                Assert.True(err <= a * halfGap * (1 + 1e-6), $"element {i}: |{w[i]} - {deq[i]}| = {err} > {a * halfGap}");
                worst = Math.Max(worst, err / a);
            }

            Assert.True(worst > halfGap / 4, $"worst relative error {worst}: suspiciously small");
            // and each value is the nearest code, as a naive search finds it
            var naive = NaiveNf4(w, blockSize);
            for (int i = 0; i < w.Length; i++) Assert.Equal(naive[i], deq[i], 6);
        }
    }

    [Theory]
    [InlineData(64)]
    [InlineData(10)]
    public void Int8_round_trip_error_stays_within_half_a_step_of_absmax_over_127(int blockSize)
    {
        var w = RandomWeights(9, 33, seed: 8);
        using var weight = torch.tensor(w, 9, 33);
        var (codes, absmax) = BlockQuantization.Quantize(weight, QuantizationKind.Int8, blockSize);
        using (codes)
        using (absmax)
        using (var back = BlockQuantization.Dequantize(codes, absmax, QuantizationKind.Int8, blockSize, 0, w.Length))
        {
            Assert.Equal(ScalarType.Int8, codes.dtype);
            var deq = back.data<float>().ToArray();
            var q = codes.data<sbyte>().ToArray();
            var blockMax = NaiveAbsmax(w, blockSize);
            for (int i = 0; i < w.Length; i++)
            {
                double a = blockMax[i / blockSize];
                Assert.True(Math.Abs(w[i] - deq[i]) <= a / 127 / 2 * (1 + 1e-5), $"element {i}: {w[i]} vs {deq[i]}");
                Assert.Equal((sbyte)Math.Round(w[i] / a * 127), q[i]);
            }
        }
    }

    [Fact]
    public void Two_nf4_codes_share_a_byte_the_first_element_in_the_high_nibble()
    {
        // one block of 8, absmax 2: -2 → code 0, 2 → 15, 0 → 7, 2·0.0796 → 8, then 2·(-0.0911) → 6, 2·0.7230 → 14, 0, 0
        float[] w = [-2f, 2f, 0f, 2 * 0.0796f, 2 * -0.0911f, 2 * 0.723f, 0f, 0f];
        using var weight = torch.tensor(w);
        var (codes, absmax) = BlockQuantization.Quantize(weight, QuantizationKind.Nf4, 8);
        using (codes)
        using (absmax)
        {
            Assert.Equal(new byte[] { 0x0F, 0x78, 0x6E, 0x77 }, codes.data<byte>().ToArray());
            Assert.Equal(new[] { 2f }, absmax.data<float>().ToArray());
            using var part = BlockQuantization.Dequantize(codes, absmax, QuantizationKind.Nf4, 8, 1, 3); // elements 1..3 only
            Assert.Equal(new[] { 2f, 0f, 2 * 0.07958029955625534f }, part.data<float>().ToArray());
        }
    }

    [Fact]
    public void A_range_decodes_only_its_blocks_and_equals_the_slice_of_the_whole()
    {
        var w = RandomWeights(5, 40, seed: 3);
        using var weight = torch.tensor(w, 5, 40);
        foreach (var kind in new[] { QuantizationKind.Nf4, QuantizationKind.Int8 })
        {
            var (codes, absmax) = BlockQuantization.Quantize(weight, kind, 16);
            using (codes)
            using (absmax)
            using (var whole = BlockQuantization.Dequantize(codes, absmax, kind, 16, 0, w.Length))
            using (var row = BlockQuantization.Dequantize(codes, absmax, kind, 16, 2 * 40, 40))
            {
                Assert.Equal(whole.data<float>().ToArray()[80..120], row.data<float>().ToArray());
                Assert.Throws<ArgumentException>(() => BlockQuantization.Dequantize(codes, absmax, kind, 16, 190, 20));
            }
        }
    }

    [Fact]
    public void A_zero_block_decodes_to_zeros_and_bad_input_is_refused_by_name()
    {
        using var zeros = torch.zeros(2, 8);
        var (codes, absmax) = BlockQuantization.Quantize(zeros, QuantizationKind.Nf4, 8);
        using (codes)
        using (absmax)
        using (var back = BlockQuantization.Dequantize(codes, absmax, QuantizationKind.Nf4, 8, 0, 16))
            Assert.All(back.data<float>().ToArray(), v => Assert.Equal(0f, v));

        using var nan = torch.tensor(new[] { 1f, float.NaN });
        Assert.Contains("NaN", Assert.Throws<ArgumentException>(() => BlockQuantization.Quantize(nan, QuantizationKind.Nf4, 2)).Message);
        using var ints = torch.ones(4, dtype: ScalarType.Int32);
        Assert.Contains("Int32", Assert.Throws<ArgumentException>(() => BlockQuantization.Quantize(ints, QuantizationKind.Int8, 2)).Message);
        using var ones = torch.ones(4);
        Assert.Contains("blockSize = 3", Assert.Throws<ArgumentException>(() => BlockQuantization.Quantize(ones, QuantizationKind.Nf4, 3)).Message);
        var errors = new QuantizationOptions { BlockSize = 63, TargetModules = [] }.GetValidationErrors();
        Assert.Equal(["BlockSize", "TargetModules"], errors.Select(e => e.Field));
        Assert.Empty(new QuantizationOptions().GetValidationErrors());
    }

    private static float[] RandomWeights(int rows, int cols, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, rows * cols).Select(_ => (float)(random.NextDouble() * 2 - 1) * (1 + 3 * (float)random.NextDouble())).ToArray();
    }

    private static float[] NaiveAbsmax(float[] w, int blockSize)
    {
        var result = new float[(w.Length + blockSize - 1) / blockSize];
        for (int i = 0; i < w.Length; i++) result[i / blockSize] = Math.Max(result[i / blockSize], Math.Abs(w[i]));
        return result;
    }

    /// <summary>deq(q(w)) by a naive search for the nearest NF4 code of w / absmax, element by element.</summary>
    private static float[] NaiveNf4(float[] w, int blockSize)
    {
        var absmax = NaiveAbsmax(w, blockSize);
        var result = new float[w.Length];
        for (int i = 0; i < w.Length; i++)
        {
            float a = absmax[i / blockSize], x = a == 0 ? 0 : w[i] / a;
            int best = 0;
            for (int c = 1; c < 16; c++)
                if (Math.Abs(x - PublishedNf4[c]) < Math.Abs(x - PublishedNf4[best])) best = c;
            result[i] = (float)PublishedNf4[best] * a;
        }

        return result;
    }
}
