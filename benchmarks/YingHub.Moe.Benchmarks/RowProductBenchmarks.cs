using BenchmarkDotNet.Attributes;
using TorchSharp;
using YingHub.Moe.Core.Kernels;
using static TorchSharp.torch;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// One row times a weight, as a decoding step does it: <c>x (1, in) @ W (in, out)</c> with W cold in memory (each
/// operation walks through <see cref="Copies"/> different weights, 75–300 MB, beyond the caches), by libtorch
/// (<c>mm</c>, i.e. BLAS's matrix-vector product) and by the library's kernel (<see cref="RowProduct"/>). One
/// operation = <see cref="Copies"/> products; GB/s = Copies · in · out · 4 bytes / time. Shapes: a yinghub-v2
/// expert's layers (192 → 768, 768 → 768, 768 → 192).
/// </summary>
[MemoryDiagnoser(false)]
public class RowProductBenchmarks
{
    /// <summary>Different weights per operation, so every product reads its weight from memory.</summary>
    public const int Copies = 128;

    private Tensor[] _weights = null!;
    private Tensor _x = null!;

    /// <summary>The weight's (in, out), as "in x out".</summary>
    [Params("192x768", "768x768", "768x192")]
    public string Shape { get; set; } = "192x768";

    [GlobalSetup]
    public void Setup()
    {
        torch.manual_seed(0);
        int[] size = Shape.Split('x').Select(int.Parse).ToArray();
        _weights = Enumerable.Range(0, Copies).Select(_ => torch.randn(size[0], size[1])).ToArray();
        _x = torch.randn(1, size[0]);
        if (!RowProduct.Supported) throw new NotSupportedException("The row kernel needs AVX2 or AVX-512.");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var w in _weights) w.Dispose();
        _x.Dispose();
    }

    [Benchmark(Baseline = true, Description = "libtorch mm")]
    public void Libtorch()
    {
        using var inference = torch.inference_mode();
        foreach (var w in _weights)
        {
            using var y = _x.mm(w);
        }
    }

    [Benchmark(Description = "row kernel")]
    public void Kernel()
    {
        using var inference = torch.inference_mode();
        foreach (var w in _weights)
        {
            using var y = RowProduct.MatMul(_x, w, null) ?? throw new InvalidOperationException("the row kernel did not apply");
        }
    }
}

/// <summary>
/// One row through an output-major (out, in) weight, as a tied LM head reads its (V, C) embedding: GPT-2's vocabulary at
/// the yinghub-v2 width, 50,257 × 192 (38.6 MB), <see cref="Copies"/> different copies per operation, by libtorch
/// (<c>nn.functional.linear</c>: BLAS's <c>x @ Wᵀ</c>) and by <see cref="RowProduct.Linear"/>.
/// </summary>
[MemoryDiagnoser(false)]
public class RowLinearBenchmarks
{
    /// <summary>Different weights per operation (309 MB), so every product reads its weight from memory.</summary>
    public const int Copies = 8;

    private Tensor[] _weights = null!;
    private Tensor _x = null!;

    [GlobalSetup]
    public void Setup()
    {
        torch.manual_seed(0);
        _weights = Enumerable.Range(0, Copies).Select(_ => torch.randn(50257, 192)).ToArray();
        _x = torch.randn(1, 192);
        if (!RowProduct.Supported) throw new NotSupportedException("The row kernel needs AVX2 or AVX-512.");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var w in _weights) w.Dispose();
        _x.Dispose();
    }

    [Benchmark(Baseline = true, Description = "libtorch linear")]
    public void Libtorch()
    {
        using var inference = torch.inference_mode();
        foreach (var w in _weights)
        {
            using var y = nn.functional.linear(_x, w);
        }
    }

    [Benchmark(Description = "row kernel")]
    public void Kernel()
    {
        using var inference = torch.inference_mode();
        foreach (var w in _weights)
        {
            using var y = RowProduct.Linear(_x, w, null) ?? throw new InvalidOperationException("the row kernel did not apply");
        }
    }
}
