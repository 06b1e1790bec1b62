using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Kernels;

/// <summary>
/// Matrix products of a few rows on the CPU in managed SIMD code, <c>Y = X @ W + b</c> for X (R, in) with
/// 2 ≤ R ≤ <see cref="MaxRows"/>: the products of a batched decoding step (B sequences, one new token each). They
/// generalise <see cref="RowProduct"/>'s one-row loops: the weight is walked in blocks of 64 columns, and each block is
/// applied to four rows at a time from registers (16 accumulators), so every weight is read from memory once for all
/// rows and reused from cache. libtorch hands such shapes to a general GEMM whose packing and per-call setup dominate
/// at tiny R (the rollout benchmark, docs/benchmarks.md).
/// <para>
/// Used by <see cref="Precision.Autocast"/>'s products under the same conditions as <see cref="RowProduct"/> (no
/// autograd, no autocast scope, float32 CPU tensors, a dense weight, AVX2 or AVX-512), for x holding 2..MaxRows rows.
/// Results differ from libtorch's by float32 rounding (another summation order).
/// </para>
/// </summary>
internal static unsafe class FewRows
{
    /// <summary>
    /// The most rows the kernels take. Beyond it the weight is reused enough that libtorch's blocked GEMM, which packs
    /// the operands and runs on every torch thread, is the better product; 64 covers a rollout batch of 32 with top-2 routing.
    /// </summary>
    public const int MaxRows = 64;

    private const int RowsPerBlock = 4;   // rows that share one pass over a column block
    private const int ColumnsPerBlock = 64;

    /// <summary>
    /// Multiply-adds from which a product is split between threads: starting a parallel loop costs some microseconds,
    /// about what one thread needs for 2^20 multiply-adds here.
    /// </summary>
    private const long ParallelWork = 1 << 20;

    /// <summary>
    /// Whether batched decoding uses the few-row kernels (these products, <see cref="ExpertRows"/> and the batched
    /// <see cref="AttentionRow"/>) when <see cref="RowProduct.Enabled"/> and supported; the benchmarks turn it off to time libtorch's path.
    /// </summary>
    public static bool Enabled { get; set; } = true;

    /// <summary>
    /// Whether the few-row kernels run on x: enabled (with <see cref="RowProduct.Enabled"/>) and supported, no autograd,
    /// and x a contiguous float32 CPU tensor (..., in) of 2..<see cref="MaxRows"/> rows.
    /// </summary>
    internal static bool Runs(Tensor x)
    {
        if (!Enabled || !RowProduct.Enabled || !RowProduct.Supported || torch.is_grad_enabled() || !RowProduct.IsFloatCpu(x) || x.dim() < 2) return false;
        long width = x.size(-1);
        return width > 0 && x.numel() / width is >= 2 and <= MaxRows;
    }

    /// <summary>
    /// <c>x @ weightᵀ + bias</c> (x (..., in) with 2..MaxRows rows, weight (out, in) as <c>nn.functional.linear</c>, bias
    /// (out)) → (..., out), or null when the kernels do not apply. The weight may be a dense (out, in) matrix or the
    /// transposed view of a dense (in, out) one.
    /// </summary>
    public static Tensor? Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        if (!Runs(x) || !RowProduct.IsDenseFloat(weight, bias)) return null;
        if (weight.is_contiguous()) return Run(x, weight, bias, inputMajor: false);
        using var inputMajor = weight.t(); // (in, out)
        return inputMajor.is_contiguous() ? Run(x, inputMajor, bias, inputMajor: true) : null;
    }

    /// <summary>
    /// <c>x @ weight + bias</c> (x (..., in) with 2..MaxRows rows, weight (in, out), bias (out)) → (..., out), or null
    /// when the kernels do not apply.
    /// </summary>
    public static Tensor? MatMul(Tensor x, Tensor weight, Tensor? bias) =>
        Runs(x) && RowProduct.IsDenseFloat(weight, bias) && weight.is_contiguous() ? Run(x, weight, bias, inputMajor: true) : null;

    private static Tensor? Run(Tensor x, Tensor weight, Tensor? bias, bool inputMajor)
    {
        long inFeatures = weight.size(inputMajor ? 0 : 1), outFeatures = weight.size(inputMajor ? 1 : 0);
        // shapes that do not fit are left to libtorch, which raises its own error
        if (x.size(-1) != inFeatures || (bias is not null && bias.size(0) != outFeatures)
            || outFeatures == 0 || inFeatures * outFeatures > int.MaxValue / sizeof(float)) // Tensor.bytes spans at most 2 GB
            return null;
        int rows = (int)(x.numel() / inFeatures), n = (int)inFeatures, m = (int)outFeatures;
        var shape = new long[x.dim()];
        for (int d = 0; d < shape.Length - 1; d++) shape[d] = x.size(d);
        shape[^1] = outFeatures;
        var y = torch.empty(shape, ScalarType.Float32);
        float* pb = bias is null ? null : RowProduct.Data(bias);
        if (inputMajor) InputMajor(RowProduct.Data(x), RowProduct.Data(weight), pb, RowProduct.Data(y), rows, n, m, RowProduct.Wide);
        else OutputMajor(RowProduct.Data(x), RowProduct.Data(weight), pb, RowProduct.Data(y), rows, n, m, RowProduct.Wide);
        return y;
    }

    /// <summary>
    /// Y (rows, m) = X (rows, n) @ W (n, m) + b (b may be null). Per block of 64 columns (n × 64 weights, which stay in
    /// cache), four rows at a time, then the remaining rows one at a time; the last m mod 64 columns row by row.
    /// With enough work (<see cref="ParallelWork"/>) the column blocks are split between libtorch's number of threads
    /// (each thread writes its own columns). 512-bit vectors when <paramref name="wide"/>, else 256-bit (the tests run both).
    /// </summary>
    internal static void InputMajor(float* x, float* w, float* b, float* y, int rows, int n, int m, bool wide)
    {
        int blocks = m / ColumnsPerBlock;
        int parts = blocks > 1 && (long)rows * n * m >= ParallelWork ? Math.Min(torch.get_num_threads(), blocks) : 1;
        if (parts <= 1)
        {
            Blocks(x, w, b, y, (rows, n, m), 0, blocks, wide);
        }
        else
        {
            (nint px, nint pw, nint pb, nint py) = ((nint)x, (nint)w, (nint)b, (nint)y); // pointers cannot be captured
            Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts },
                p => Blocks((float*)px, (float*)pw, (float*)pb, (float*)py, (rows, n, m), blocks * p / parts, blocks * (p + 1) / parts, wide));
        }

        if (blocks * ColumnsPerBlock < m)
            for (int r = 0; r < rows; r++) RowProduct.ColumnsFrom(x + (long)r * n, w, b, y + (long)r * m, n, m, blocks * ColumnsPerBlock);
    }

    /// <summary>Column blocks [<paramref name="first"/>, <paramref name="end"/>) of <see cref="InputMajor"/>'s product, for every row.</summary>
    private static void Blocks(float* x, float* w, float* b, float* y, (int Rows, int N, int M) shape, int first, int end, bool wide)
    {
        var (rows, n, m) = shape;
        for (int j = first * ColumnsPerBlock; j < end * ColumnsPerBlock; j += ColumnsPerBlock)
        {
            float* bj = b is null ? null : b + j;
            int r = 0;
            if (wide)
                for (; r + RowsPerBlock <= rows; r += RowsPerBlock) Rows4Columns64Avx512(x + (long)r * n, w + j, bj, y + (long)r * m + j, n, m);
            for (; r < rows; r++)
            {
                if (wide) RowProduct.Columns64Avx512(x + (long)r * n, w + j, bj, y + (long)r * m + j, n, m);
                else RowProduct.Columns64Avx2(x + (long)r * n, w + j, bj, y + (long)r * m + j, n, m);
            }
        }
    }

    /// <summary>Four rows (x rows n apart, y rows <paramref name="stride"/> apart) times one 64-column block of w (row stride <paramref name="stride"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Rows4Columns64Avx512(float* x, float* w, float* b, float* y, int n, int stride)
    {
        Vector512<float> a00, a01, a02, a03;
        if (b is null) a00 = a01 = a02 = a03 = Vector512<float>.Zero;
        else (a00, a01, a02, a03) = (Vector512.Load(b), Vector512.Load(b + 16), Vector512.Load(b + 32), Vector512.Load(b + 48));
        Vector512<float> a10 = a00, a11 = a01, a12 = a02, a13 = a03;
        Vector512<float> a20 = a00, a21 = a01, a22 = a02, a23 = a03;
        Vector512<float> a30 = a00, a31 = a01, a32 = a02, a33 = a03;
        float* x1 = x + n, x2 = x + 2 * n, x3 = x + 3 * n;
        for (int i = 0; i < n; i++, w += stride)
        {
            var (w0, w1, w2, w3) = (Vector512.Load(w), Vector512.Load(w + 16), Vector512.Load(w + 32), Vector512.Load(w + 48));
            var s = Vector512.Create(x[i]);
            (a00, a01, a02, a03) = (Vector512.FusedMultiplyAdd(s, w0, a00), Vector512.FusedMultiplyAdd(s, w1, a01), Vector512.FusedMultiplyAdd(s, w2, a02), Vector512.FusedMultiplyAdd(s, w3, a03));
            s = Vector512.Create(x1[i]);
            (a10, a11, a12, a13) = (Vector512.FusedMultiplyAdd(s, w0, a10), Vector512.FusedMultiplyAdd(s, w1, a11), Vector512.FusedMultiplyAdd(s, w2, a12), Vector512.FusedMultiplyAdd(s, w3, a13));
            s = Vector512.Create(x2[i]);
            (a20, a21, a22, a23) = (Vector512.FusedMultiplyAdd(s, w0, a20), Vector512.FusedMultiplyAdd(s, w1, a21), Vector512.FusedMultiplyAdd(s, w2, a22), Vector512.FusedMultiplyAdd(s, w3, a23));
            s = Vector512.Create(x3[i]);
            (a30, a31, a32, a33) = (Vector512.FusedMultiplyAdd(s, w0, a30), Vector512.FusedMultiplyAdd(s, w1, a31), Vector512.FusedMultiplyAdd(s, w2, a32), Vector512.FusedMultiplyAdd(s, w3, a33));
        }

        Store(y, a00, a01, a02, a03);
        Store(y + stride, a10, a11, a12, a13);
        Store(y + 2 * stride, a20, a21, a22, a23);
        Store(y + 3 * stride, a30, a31, a32, a33);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* y, Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3)
    {
        a0.Store(y);
        a1.Store(y + 16);
        a2.Store(y + 32);
        a3.Store(y + 48);
    }

    /// <summary>
    /// Y (rows, m) = X (rows, n) @ Wᵀ + b with W (m, n) (b may be null): per group of four weight rows (read from memory
    /// once), their dot products with every x row (X stays in cache), e.g. an LM head over the (V, C) embedding.
    /// </summary>
    internal static void OutputMajor(float* x, float* w, float* b, float* y, int rows, int n, int m, bool wide)
    {
        int o = 0;
        for (; o + 4 <= m; o += 4)
        {
            float* wo = w + (long)o * n;
            for (int r = 0; r < rows; r++)
            {
                var (d0, d1, d2, d3) = wide ? RowProduct.Dot4Avx512(x + (long)r * n, wo, n) : RowProduct.Dot4Avx2(x + (long)r * n, wo, n);
                float* yr = y + (long)r * m + o;
                yr[0] = d0 + (b is null ? 0f : b[o]);
                yr[1] = d1 + (b is null ? 0f : b[o + 1]);
                yr[2] = d2 + (b is null ? 0f : b[o + 2]);
                yr[3] = d3 + (b is null ? 0f : b[o + 3]);
            }
        }

        if (o < m)
            for (int r = 0; r < rows; r++) RowProduct.OutputMajor(x + (long)r * n, w + (long)o * n, b is null ? null : b + o, y + (long)r * m + o, n, m - o, wide);
    }
}
