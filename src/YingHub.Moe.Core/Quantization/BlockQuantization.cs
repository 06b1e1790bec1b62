using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Quantization;

/// <summary>
/// Blockwise absmax quantization of a tensor, as QLoRA (Dettmers et al. 2023, "QLoRA: Efficient Finetuning of
/// Quantized LLMs", section 3) and bitsandbytes define it, in vectorised torch ops:
/// <list type="number">
/// <item>flatten the tensor (row-major) and pad it with zeros to a whole number of blocks of <c>blockSize</c>
/// consecutive elements;</item>
/// <item>per block, <c>absmax = max |w|</c> (float32; an all-zero block keeps absmax 0 and decodes to zeros);</item>
/// <item>NF4: each element becomes the index (0..15) of the nearest <see cref="Nf4Codes"/> value to <c>w / absmax</c>,
/// and two indices share a byte, element 2i in the high nibble and 2i + 1 in the low one (bitsandbytes' order);
/// int8: each element becomes <c>round(127 · w / absmax)</c> in [-127, 127], one signed byte;</item>
/// <item>dequantize: <c>code · absmax</c> (NF4: <c>Nf4Codes[index] · absmax</c>; int8: <c>q / 127 · absmax</c>).</item>
/// </list>
/// The error per element is at most <c>absmax</c> times half the widest gap between adjacent NF4 codes (about
/// 0.139 · absmax), or <c>absmax / 127 / 2</c> for int8. The absmax scales are not quantized again (QLoRA's double
/// quantization is not done).
/// </summary>
public static class BlockQuantization
{
    private const int Int8Levels = 127;
    private const int NibbleBase = 16;

    /// <summary>
    /// The 16 NormalFloat4 values, ascending, exactly as bitsandbytes publishes them (<c>functional.py</c>,
    /// <c>get_4bit_type("nf4")</c>; QLoRA, appendix E): the quantiles of N(0, 1) at 8 points from 0.5 to
    /// δ = ½ (1/32 + 1/30) below 1 for the positive side (7 nonzero), at 7 points for the negative side, an exact 0,
    /// normalised to [-1, 1].
    /// </summary>
    public static IReadOnlyList<float> Nf4Codes { get; } =
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f, -0.28444138169288635f,
        -0.18477343022823334f, -0.09105003625154495f, 0.0f, 0.07958029955625534f, 0.16093020141124725f,
        0.24611230194568634f, 0.33791524171829224f, 0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>The bytes the codes of <paramref name="elements"/> elements take (absmax not included).</summary>
    public static long CodeBytes(long elements, QuantizationKind kind, int blockSize) =>
        Blocks(elements, blockSize) * blockSize / (kind == QuantizationKind.Nf4 ? 2 : 1);

    /// <summary>The number of blocks of <paramref name="blockSize"/> that cover <paramref name="elements"/> elements.</summary>
    public static long Blocks(long elements, int blockSize) => (elements + blockSize - 1) / blockSize;

    /// <summary>
    /// Quantizes <paramref name="weight"/> (any shape, floating point, finite) into codes (NF4: uint8 (⌈M/bs⌉·bs/2);
    /// int8: int8 (⌈M/bs⌉·bs)) and absmax scales (float32 (⌈M/bs⌉)), on its device, without autograd. The caller owns both.
    /// </summary>
    /// <exception cref="ArgumentException">An empty or non-floating tensor, a non-finite element, or a block size that is not even and positive.</exception>
    public static (Tensor Codes, Tensor Absmax) Quantize(Tensor weight, QuantizationKind kind, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(weight);
        if (blockSize < 2 || blockSize % 2 != 0) throw new ArgumentException($"blockSize = {blockSize} is invalid; allowed: even and >= 2.", nameof(blockSize));
        if (!torch.is_floating_point(weight)) throw new ArgumentException($"Cannot quantize a {weight.dtype} tensor; a floating-point weight is needed.", nameof(weight));
        long m = weight.numel();
        if (m == 0) throw new ArgumentException("Cannot quantize an empty tensor.", nameof(weight));
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var flat = weight.detach().reshape(-1).to(ScalarType.Float32);                        // (M)
        if (!flat.isfinite().all().item<bool>()) throw new ArgumentException($"Cannot quantize a tensor of shape [{string.Join(", ", weight.shape)}] with NaN or infinite elements.", nameof(weight));
        long blocks = Blocks(m, blockSize);
        if (blocks * blockSize > m) flat = nn.functional.pad(flat, [0, blocks * blockSize - m]); // (nb·bs), zero padding
        var w = flat.view(blocks, blockSize);                                                    // (nb, bs)
        var absmax = w.abs().amax(1);                                                            // (nb)
        var normed = w / absmax.masked_fill(absmax.eq(0), 1).unsqueeze(1);                       // (nb, bs) in [-1, 1]
        Tensor codes;
        if (kind == QuantizationKind.Nf4)
        {
            var index = normed.bucketize(Nf4Midpoints(w.device)).view(-1, 2);                  // (nb·bs/2, 2) int64: nearest code
            codes = (index[.., 0] * NibbleBase + index[.., 1]).to(ScalarType.Byte);            // (nb·bs/2): high nibble first
        }
        else
        {
            codes = normed.mul(Int8Levels).round().to(ScalarType.Int8).view(-1);               // (nb·bs)
        }

        return (codes.MoveToOuterDisposeScope(), absmax.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Elements [<paramref name="start"/>, <paramref name="start"/> + <paramref name="length"/>) of the flattened tensor
    /// that <paramref name="codes"/> and <paramref name="absmax"/> encode, 1-D in absmax's dtype, on their device; only
    /// the blocks that cover the range are decoded. The caller owns the result (in the current dispose scope).
    /// </summary>
    /// <exception cref="ArgumentException">The range lies outside the encoded blocks, or the codes' dtype does not match <paramref name="kind"/>.</exception>
    public static Tensor Dequantize(Tensor codes, Tensor absmax, QuantizationKind kind, int blockSize, long start, long length)
    {
        ArgumentNullException.ThrowIfNull(codes);
        ArgumentNullException.ThrowIfNull(absmax);
        var expected = kind == QuantizationKind.Nf4 ? ScalarType.Byte : ScalarType.Int8;
        if (codes.dtype != expected) throw new ArgumentException($"{kind} codes must be {expected}, not {codes.dtype}.", nameof(codes));
        long total = absmax.size(0) * blockSize;
        if (start < 0 || length < 1 || start + length > total)
            throw new ArgumentException($"Range [{start}, {start + length}) is outside the {total} encoded elements.", nameof(start));
        using var scope = torch.NewDisposeScope();
        long first = start / blockSize, blocks = Blocks(start + length, blockSize) - first;
        int perByte = kind == QuantizationKind.Nf4 ? 2 : 1;
        var slice = codes.narrow(0, first * blockSize / perByte, blocks * blockSize / perByte);  // the covering blocks' codes
        Tensor values;                                                                           // (blocks·bs), in [-1, 1]
        if (kind == QuantizationKind.Nf4)
        {
            var bytes = slice.to(ScalarType.Int64);                                              // (blocks·bs/2)
            var index = torch.stack([bytes.div(NibbleBase, RoundingMode.floor), bytes.remainder(NibbleBase)], 1).view(-1); // (blocks·bs): high nibble first
            values = Nf4Table(absmax.dtype, absmax.device).index_select(0, index);
        }
        else
        {
            values = slice.to(absmax.dtype).div(Int8Levels);
        }

        var scales = absmax.narrow(0, first, blocks).unsqueeze(1);                               // (blocks, 1)
        var result = (values.view(blocks, blockSize) * scales).view(-1).narrow(0, start - first * blockSize, length); // (length)
        return result.MoveToOuterDisposeScope();
    }

    private static Tensor Nf4Table(ScalarType dtype, Device device) =>
        torch.tensor(Nf4Codes.ToArray(), device: device).to(dtype);

    /// <summary>The 15 midpoints between adjacent NF4 codes: the decision boundaries of the nearest code.</summary>
    private static Tensor Nf4Midpoints(Device device)
    {
        var mid = new float[Nf4Codes.Count - 1];
        for (int i = 0; i < mid.Length; i++) mid[i] = (Nf4Codes[i] + Nf4Codes[i + 1]) / 2;
        return torch.tensor(mid, device: device);
    }
}
