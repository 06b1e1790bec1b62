using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Kernels;

/// <summary>
/// One decoding step's causal self-attention over a KV cache on the CPU, in managed code (one new position for each of
/// B sequences, unpadded, B = 1 or up to <see cref="FewRows.MaxRows"/>): rotate q and k (with rotary positions), write k and v into the cache at the token's position, and per head
/// <c>softmax(q Kᵀ / √hd) V</c> over every cached position up to and including the new one. libtorch's path for the same
/// step is about a dozen tensor operations (views of the fused projection, two cache copies, the views of the cache,
/// <c>scaled_dot_product_attention</c>, the merge of the heads), a few microseconds each; this is a loop over
/// 128 × 192 floats at most per layer on the presets. It computes what <see cref="Modules.CausalSelfAttention"/>
/// computes, in float32, up to rounding.
/// </summary>
internal static unsafe class AttentionRow
{
    /// <summary>
    /// Whether the managed path runs: the fused projection's output qkv (B, 1, (nh + 2 nkv) hd) one row
    /// (<see cref="RowProduct.Runs"/>) or a few (<see cref="FewRows.Runs"/>), float32 CPU cache buffers
    /// (B, nkv, Tmax, hd) with room at <paramref name="position"/>, <paramref name="queryHeads"/> nh a multiple of nkv
    /// (null: nh = nkv), and float32 CPU rotary tables (Tmax, hd) if given.
    /// </summary>
    public static bool Applies(Tensor qkv, Tensor keys, Tensor values, long position, (Tensor Cos, Tensor Sin)? rotary, int? queryHeads = null)
    {
        if (!RowProduct.IsFloatCpu(keys) || !RowProduct.IsFloatCpu(values) || keys.dim() != 4 || values.dim() != 4
            || keys.numel() > int.MaxValue / sizeof(float)) // Tensor.bytes spans at most 2 GB
            return false;
        long rows = keys.size(0), kvHeads = keys.size(1), length = keys.size(2), headDim = keys.size(3);
        long heads = queryHeads ?? kvHeads;
        if (heads < kvHeads || heads % kvHeads != 0) return false;
        if (!(rows == 1 ? RowProduct.Runs(qkv) : FewRows.Runs(qkv) && qkv.size(0) == rows && qkv.numel() == rows * qkv.size(-1))
            || values.size(0) != rows)
            return false;
        if (qkv.size(-1) != (heads + 2 * kvHeads) * headDim || position >= length
            || values.size(1) != kvHeads || values.size(2) != length || values.size(3) != headDim)
            return false;
        return rotary is not { } r
            || (RowProduct.IsFloatCpu(r.Cos) && RowProduct.IsFloatCpu(r.Sin) && r.Cos.size(0) > position && r.Cos.size(1) == headDim && r.Sin.size(0) > position && r.Sin.size(1) == headDim);
    }

    /// <summary>
    /// The attention output (B, 1, nh·hd) of the tokens whose fused projections are <paramref name="qkv"/>
    /// (B, 1, (nh + 2 nkv) hd: q with nh heads, k and v with nkv) at <paramref name="position"/> of every row; writes
    /// their keys and values into <paramref name="keys"/> and <paramref name="values"/> (B, nkv, Tmax, hd) there. Query
    /// head h reads key/value head h / (nh / nkv) (grouped-query attention; nh = nkv without it). The scores are q·k ×
    /// <paramref name="scale"/> (null: 1/√hd). <paramref name="queryHeads"/> is nh (null: nkv). Check
    /// <see cref="Applies"/> first.
    /// </summary>
    public static Tensor Attend(Tensor qkv, Tensor keys, Tensor values, long position, (Tensor Cos, Tensor Sin)? rotary, float? scale = null, int? queryHeads = null)
    {
        int rows = (int)keys.size(0), kvHeads = (int)keys.size(1), length = (int)keys.size(2), hd = (int)keys.size(3), keep = (int)position + 1;
        int heads = queryHeads ?? kvHeads, width = (heads + 2 * kvHeads) * hd;
        var y = torch.empty([rows, 1, heads * hd], ScalarType.Float32);
        float* output = RowProduct.Data(y);
        float* cos = rotary is { } r1 ? RowProduct.Data(r1.Cos) + position * hd : null;
        float* sin = rotary is { } r2 ? RowProduct.Data(r2.Sin) + position * hd : null;
        float scoreScale = scale ?? 1f / MathF.Sqrt(hd);
        Span<float> q = hd <= 256 ? stackalloc float[hd] : new float[hd];
        Span<float> scores = keep <= 1024 ? stackalloc float[keep] : new float[keep];
        float* source = RowProduct.Data(qkv), k = RowProduct.Data(keys), v = RowProduct.Data(values);
        long cached = (long)kvHeads * length * hd; // one row's cache
        fixed (float* pq = q, ps = scores)
        {
            for (int row = 0; row < rows; row++)
                Row(source + (long)row * width, k + row * cached, v + row * cached, output + (long)row * heads * hd, pq, ps, (heads, kvHeads, length, hd), position, cos, sin, scoreScale);
        }

        return y;
    }

    /// <summary>
    /// One row's attention: <paramref name="source"/> its q (nh·hd), k and v (nkv·hd each), k and v its cache
    /// (nkv, Tmax, hd), output its nh·hd outputs; q (hd) and scores (position + 1) are scratch.
    /// </summary>
    private static void Row(float* source, float* k, float* v, float* output, float* pq, float* ps, (int Heads, int KvHeads, int Length, int HeadDim) shape,
        long position, float* cos, float* sin, float scale)
    {
        var (heads, kvHeads, length, hd) = shape;
        int qWidth = heads * hd, kvWidth = kvHeads * hd, group = heads / kvHeads, keep = (int)position + 1;
        // the new key (rotated) and value of every key/value head into the cache first: each serves a group of query heads
        for (int g = 0; g < kvHeads; g++)
        {
            float* kg = k + (long)g * length * hd, vg = v + (long)g * length * hd; // (Tmax, hd) of key/value head g
            Rotate(source + qWidth + g * hd, cos, sin, kg + position * hd, hd, 1f);
            new ReadOnlySpan<float>(source + qWidth + kvWidth + g * hd, hd).CopyTo(new Span<float>(vg + position * hd, hd));
        }

        for (int h = 0; h < heads; h++)
        {
            int g = h / group;
            float* kh = k + (long)g * length * hd, vh = v + (long)g * length * hd; // (Tmax, hd) of the head's key/value head
            Rotate(source + h * hd, cos, sin, pq, hd, scale); // q, pre-scaled, as the product q·k × scale

            float max = float.NegativeInfinity;
            for (int s = 0; s < keep; s++)
            {
                ps[s] = Dot(pq, kh + (long)s * hd, hd);
                max = MathF.Max(max, ps[s]);
            }

            float sum = 0f;
            for (int s = 0; s < keep; s++) sum += ps[s] = MathF.Exp(ps[s] - max);
            float* oh = output + h * hd;
            new Span<float>(oh, hd).Clear();
            for (int s = 0; s < keep; s++) RowProduct.AddScaled(oh, ps[s] / sum, vh + (long)s * hd, hd);
        }
    }

    /// <summary>
    /// destination (hd) = scale · rotary(x): with tables, <c>x · cos + rotate_half(x) · sin</c> (rotate_half = (−x₂, x₁)
    /// of the halves, as <see cref="Modules.RotaryEmbedding"/>); without, x itself.
    /// </summary>
    private static void Rotate(float* x, float* cos, float* sin, float* destination, int hd, float scale)
    {
        if (cos is null)
        {
            for (int i = 0; i < hd; i++) destination[i] = scale * x[i];
            return;
        }

        int half = hd / 2;
        for (int i = 0; i < hd; i++)
        {
            float rotated = i < half ? -x[i + half] : x[i - half];
            destination[i] = scale * (x[i] * cos[i] + rotated * sin[i]);
        }
    }

    private static float Dot(float* a, float* b, int n)
    {
        int i = 0;
        var acc = Vector256<float>.Zero;
        for (; i + 8 <= n; i += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(a + i), Vector256.Load(b + i), acc);
        float sum = Vector256.Sum(acc);
        for (; i < n; i++) sum = MathF.FusedMultiplyAdd(a[i], b[i], sum);
        return sum;
    }
}
