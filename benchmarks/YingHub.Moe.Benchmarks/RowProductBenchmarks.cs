using BenchmarkDotNet.Attributes;
using TorchSharp;
using YingHub.Moe.Core.Kernels;
using static TorchSharp.torch;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// One row times a weight, as a decoding step does it, with the weight cold in memory (each operation walks through
/// enough different copies, 75–310 MB, to leave the caches behind), by libtorch (BLAS's matrix-vector product) and by
/// the library's kernel (<see cref="RowProduct"/>). GB/s = bytes of the copies / time. Shapes: a yinghub-v2 expert's
/// input-major layers (192 → 768, 768 → 768, 768 → 192: <c>x @ W</c>, libtorch's <c>mm</c>) and a tied LM head over
/// GPT-2's vocabulary, an output-major (50,257, 192) embedding (<c>x @ Wᵀ</c>, libtorch's <c>linear</c>).
/// </summary>
[MemoryDiagnoser(false)]
public class RowProductBenchmarks
{
    /// <summary>Bytes of weights one operation reads, at least: far more than the caches hold.</summary>
    private const long ColdBytes = 75L << 20;

    private Tensor[] _weights = null!;
    private Tensor _x = null!;
    private bool _head;

    /// <summary>"in x out" of an input-major weight, or "head" for the (50,257, 192) output-major one.</summary>
    [Params("192x768", "768x768", "768x192", "head")]
    public string Shape { get; set; } = "192x768";

    [GlobalSetup]
    public void Setup()
    {
        if (!RowProduct.Supported) throw new NotSupportedException("The row kernel needs AVX2 or AVX-512.");
        torch.manual_seed(0);
        _head = Shape == "head";
        long[] size = _head ? [50257, 192] : Shape.Split('x').Select(long.Parse).ToArray();
        long copies = Math.Max(8, ColdBytes / (size[0] * size[1] * sizeof(float)));
        _weights = Enumerable.Range(0, (int)copies).Select(_ => torch.randn(size)).ToArray();
        _x = torch.randn(1, _head ? size[1] : size[0]);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        foreach (var w in _weights) w.Dispose();
        _x.Dispose();
    }

    [Benchmark(Baseline = true, Description = "libtorch")]
    public void Libtorch()
    {
        using var inference = torch.inference_mode();
        foreach (var w in _weights)
        {
            using var y = _head ? nn.functional.linear(_x, w) : _x.mm(w);
        }
    }

    [Benchmark(Description = "row kernel")]
    public void Kernel()
    {
        using var inference = torch.inference_mode();
        foreach (var w in _weights)
        {
            using var y = (_head ? RowProduct.Linear(_x, w, null) : RowProduct.MatMul(_x, w, null))
                ?? throw new InvalidOperationException("the row kernel did not apply");
        }
    }
}
