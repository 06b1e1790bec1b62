using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Kernels;

/// <summary>
/// One-row matrix products on the CPU in managed SIMD code: <c>y = x @ W + b</c> for a single row x, the products of
/// incremental decoding. A one-token step reads every weight it uses once from memory and does two FLOPs per weight,
/// so it is bound by how fast the product streams the weight: libtorch hands one row to BLAS's matrix-vector product,
/// which streams 13–19 GB/s from memory on one core here, and these loops 20–29 GB/s with 512-bit vectors
/// (<c>RowProductBenchmarks</c>, docs/benchmarks.md).
/// <para>
/// Used by <see cref="Precision.Autocast"/>'s products when they apply: no autograd (<c>no_grad</c> or inference mode),
/// no autocast scope, float32 CPU tensors, x holding exactly one row, a weight dense in either layout, and AVX2 or
/// AVX-512. Otherwise the products return null and the caller runs libtorch's. Sums run in float32 in another order
/// than BLAS's, so results differ from libtorch's by rounding (about 1e-6 relative).
/// </para>
/// </summary>
internal static unsafe class RowProduct
{
    /// <summary>Whether this machine has the vector units the kernels are written for (AVX-512 or AVX2 on x64).</summary>
    public static bool Supported { get; } = Vector512.IsHardwareAccelerated || Vector256.IsHardwareAccelerated;

    /// <summary>Whether the kernels use 512-bit vectors (else 256-bit).</summary>
    internal static readonly bool Wide = Vector512.IsHardwareAccelerated;

    /// <summary>
    /// Whether decoding uses the kernels (these products, <see cref="ExpertRow"/> and <see cref="AttentionRow"/>) when
    /// <see cref="Supported"/>; the benchmarks turn it off to time libtorch's path.
    /// </summary>
    public static bool Enabled { get; set; } = true;

    /// <summary>
    /// <c>x @ weightᵀ + bias</c> (x (..., in) with one row, weight (out, in) as <c>nn.functional.linear</c>, bias (out))
    /// → (..., out), or null when the kernel does not apply. The weight may be a dense (out, in) matrix or the
    /// transposed view of a dense (in, out) one (<see cref="Modules.InputMajorLinear"/>'s kept view).
    /// </summary>
    public static Tensor? Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        if (!Applies(x, weight, bias)) return null;
        if (weight.is_contiguous()) return Run(x, weight, bias, inputMajor: false);
        using var inputMajor = weight.t(); // (in, out)
        return inputMajor.is_contiguous() ? Run(x, inputMajor, bias, inputMajor: true) : null;
    }

    /// <summary>
    /// <c>x @ weight + bias</c> (x (..., in) with one row, weight (in, out), bias (out)) → (..., out), or null when the
    /// kernel does not apply (see the class summary).
    /// </summary>
    public static Tensor? MatMul(Tensor x, Tensor weight, Tensor? bias) =>
        Applies(x, weight, bias) && weight.is_contiguous() ? Run(x, weight, bias, inputMajor: true) : null;

    // Property reads here are single native calls (tens of ns); Tensor.shape is avoided (about 1 µs a call).
    private static bool Applies(Tensor x, Tensor weight, Tensor? bias) => Runs(x) && IsDenseFloat(weight, bias);

    /// <summary>
    /// Whether the kernels run on <paramref name="x"/>: enabled and supported here, no autograd, and x one contiguous
    /// float32 row on the CPU (any shape (1, …, 1, in)).
    /// </summary>
    internal static bool Runs(Tensor x) =>
        Enabled && Supported && !torch.is_grad_enabled() && IsFloatCpu(x) && x.dim() >= 1 && x.numel() == x.size(-1);

    /// <summary>A float32 CPU matrix (contiguity is checked per layout by the caller) and a contiguous float32 CPU bias, if any.</summary>
    internal static bool IsDenseFloat(Tensor weight, Tensor? bias) =>
        weight.dtype == ScalarType.Float32 && weight.device_type == DeviceType.CPU && weight.dim() == 2
        && (bias is null || (IsFloatCpu(bias) && bias.dim() == 1));

    /// <summary>A contiguous float32 CPU tensor: what the kernels read through <see cref="Data"/>.</summary>
    internal static bool IsFloatCpu(Tensor t) => t.dtype == ScalarType.Float32 && t.device_type == DeviceType.CPU && t.is_contiguous();

    /// <summary>The product with a dense weight: (in, out) when <paramref name="inputMajor"/>, else (out, in).</summary>
    private static Tensor? Run(Tensor x, Tensor weight, Tensor? bias, bool inputMajor)
    {
        long inFeatures = weight.size(inputMajor ? 0 : 1), outFeatures = weight.size(inputMajor ? 1 : 0);
        // shapes that do not fit are left to libtorch, which raises its own error
        if (x.size(-1) != inFeatures || (bias is not null && bias.size(0) != outFeatures)
            || inFeatures == 0 || outFeatures == 0 || inFeatures * outFeatures > int.MaxValue / sizeof(float)) // Tensor.bytes spans at most 2 GB
            return null;
        var shape = new long[x.dim()];
        for (int d = 0; d < shape.Length - 1; d++) shape[d] = 1; // one row: every leading dimension is 1
        shape[^1] = outFeatures;
        var y = torch.empty(shape, ScalarType.Float32);
        int n = (int)inFeatures, m = (int)outFeatures;
        if (inputMajor) InputMajor(Data(x), Data(weight), bias is null ? null : Data(bias), Data(y), n, m, Wide);
        else OutputMajor(Data(x), Data(weight), bias is null ? null : Data(bias), Data(y), n, m, Wide);
        return y;
    }

    /// <summary>The address of a contiguous CPU tensor's first element.</summary>
    internal static float* Data(Tensor t)
    {
        fixed (byte* p = t.bytes) return (float*)p; // native memory: nothing to pin
    }

    /// <summary>
    /// y (m) = x (n) @ w (n, m) + b (b may be null). Columns in blocks of 64: the block's accumulators stay in registers
    /// while the loop walks down the n rows, so each weight is loaded once and y is written once. 512-bit vectors when
    /// <paramref name="wide"/>, else 256-bit (the tests run both).
    /// </summary>
    internal static void InputMajor(float* x, float* w, float* b, float* y, int n, int m, bool wide)
    {
        int j = 0;
        if (wide)
        {
            for (; j + 64 <= m; j += 64) Columns64Avx512(x, w + j, b is null ? null : b + j, y + j, n, m);
        }
        else
        {
            for (; j + 64 <= m; j += 64) Columns64Avx2(x, w + j, b is null ? null : b + j, y + j, n, m);
        }

        ColumnsFrom(x, w, b, y, n, m, j);
    }

    /// <summary>Columns <paramref name="from"/>..m−1 of <see cref="InputMajor"/>'s product: eight at a time, then one at a time.</summary>
    internal static void ColumnsFrom(float* x, float* w, float* b, float* y, int n, int m, int from)
    {
        int j = from;
        for (; j + 8 <= m; j += 8)
        {
            var acc = b is null ? Vector256<float>.Zero : Vector256.Load(b + j);
            float* p = w + j;
            for (int i = 0; i < n; i++, p += m) acc = Vector256.FusedMultiplyAdd(Vector256.Create(x[i]), Vector256.Load(p), acc);
            acc.Store(y + j);
        }

        for (; j < m; j++)
        {
            float acc = b is null ? 0f : b[j];
            float* p = w + j;
            for (int i = 0; i < n; i++, p += m) acc = MathF.FusedMultiplyAdd(x[i], *p, acc);
            y[j] = acc;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Columns64Avx512(float* x, float* w, float* b, float* y, int n, int stride)
    {
        Vector512<float> a0, a1, a2, a3;
        if (b is null) a0 = a1 = a2 = a3 = Vector512<float>.Zero;
        else (a0, a1, a2, a3) = (Vector512.Load(b), Vector512.Load(b + 16), Vector512.Load(b + 32), Vector512.Load(b + 48));
        for (int i = 0; i < n; i++, w += stride)
        {
            var xi = Vector512.Create(x[i]);
            a0 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(w), a0);
            a1 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(w + 16), a1);
            a2 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(w + 32), a2);
            a3 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(w + 48), a3);
        }

        a0.Store(y);
        a1.Store(y + 16);
        a2.Store(y + 32);
        a3.Store(y + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Columns64Avx2(float* x, float* w, float* b, float* y, int n, int stride)
    {
        Vector256<float> a0, a1, a2, a3, a4, a5, a6, a7;
        if (b is null) a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = Vector256<float>.Zero;
        else
        {
            (a0, a1, a2, a3) = (Vector256.Load(b), Vector256.Load(b + 8), Vector256.Load(b + 16), Vector256.Load(b + 24));
            (a4, a5, a6, a7) = (Vector256.Load(b + 32), Vector256.Load(b + 40), Vector256.Load(b + 48), Vector256.Load(b + 56));
        }

        for (int i = 0; i < n; i++, w += stride)
        {
            var xi = Vector256.Create(x[i]);
            a0 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(w), a0);
            a1 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(w + 8), a1);
            a2 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(w + 16), a2);
            a3 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(w + 24), a3);
            a4 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(w + 32), a4);
            a5 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(w + 40), a5);
            a6 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(w + 48), a6);
            a7 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(w + 56), a7);
        }

        a0.Store(y);
        a1.Store(y + 8);
        a2.Store(y + 16);
        a3.Store(y + 24);
        a4.Store(y + 32);
        a5.Store(y + 40);
        a6.Store(y + 48);
        a7.Store(y + 56);
    }

    /// <summary>
    /// y (m) = w (m, n) · x (n) + b (b may be null): four rows' dot products at a time over contiguous rows (e.g. a tied
    /// LM head reading the (V, C) embedding). 512-bit vectors when <paramref name="wide"/>, else 256-bit.
    /// </summary>
    internal static void OutputMajor(float* x, float* w, float* b, float* y, int n, int m, bool wide)
    {
        int o = 0;
        for (; o + 4 <= m; o += 4)
        {
            float* r = w + (long)o * n;
            var (d0, d1, d2, d3) = wide ? Dot4Avx512(x, r, n) : Dot4Avx2(x, r, n);
            y[o] = d0 + (b is null ? 0f : b[o]);
            y[o + 1] = d1 + (b is null ? 0f : b[o + 1]);
            y[o + 2] = d2 + (b is null ? 0f : b[o + 2]);
            y[o + 3] = d3 + (b is null ? 0f : b[o + 3]);
        }

        for (; o < m; o++)
        {
            float* r = w + (long)o * n;
            float acc = 0f;
            for (int i = 0; i < n; i++) acc = MathF.FusedMultiplyAdd(x[i], r[i], acc);
            y[o] = acc + (b is null ? 0f : b[o]);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (float, float, float, float) Dot4Avx512(float* x, float* r, int n)
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 16 <= n; i += 16)
        {
            var xi = Vector512.Load(x + i);
            a0 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(r + i), a0);
            a1 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(r + n + i), a1);
            a2 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(r + 2 * n + i), a2);
            a3 = Vector512.FusedMultiplyAdd(xi, Vector512.Load(r + 3 * n + i), a3);
        }

        float s0 = Vector512.Sum(a0), s1 = Vector512.Sum(a1), s2 = Vector512.Sum(a2), s3 = Vector512.Sum(a3);
        return Dot4Tail(x, r, n, i, (s0, s1, s2, s3));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static (float, float, float, float) Dot4Avx2(float* x, float* r, int n)
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var xi = Vector256.Load(x + i);
            a0 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(r + i), a0);
            a1 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(r + n + i), a1);
            a2 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(r + 2 * n + i), a2);
            a3 = Vector256.FusedMultiplyAdd(xi, Vector256.Load(r + 3 * n + i), a3);
        }

        float s0 = Vector256.Sum(a0), s1 = Vector256.Sum(a1), s2 = Vector256.Sum(a2), s3 = Vector256.Sum(a3);
        return Dot4Tail(x, r, n, i, (s0, s1, s2, s3));
    }

    /// <summary>Adds elements <paramref name="from"/>..n−1 of the four rows' dot products to the vector part's sums.</summary>
    internal static (float, float, float, float) Dot4Tail(float* x, float* r, int n, int from, (float, float, float, float) sums)
    {
        var (s0, s1, s2, s3) = sums;
        for (int i = from; i < n; i++)
        {
            s0 = MathF.FusedMultiplyAdd(x[i], r[i], s0);
            s1 = MathF.FusedMultiplyAdd(x[i], r[n + i], s1);
            s2 = MathF.FusedMultiplyAdd(x[i], r[2 * n + i], s2);
            s3 = MathF.FusedMultiplyAdd(x[i], r[3 * n + i], s3);
        }

        return (s0, s1, s2, s3);
    }

    /// <summary>y (n) += a · x (n).</summary>
    internal static void AddScaled(float* y, float a, float* x, int n)
    {
        int i = 0;
        var va = Vector256.Create(a);
        for (; i + 8 <= n; i += 8) Vector256.FusedMultiplyAdd(va, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
        for (; i < n; i++) y[i] = MathF.FusedMultiplyAdd(a, x[i], y[i]);
    }
}
