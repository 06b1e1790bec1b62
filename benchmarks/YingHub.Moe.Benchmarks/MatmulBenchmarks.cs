using BenchmarkDotNet.Attributes;
using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// The machine's square-matmul throughput: the peak that model-FLOPs utilisation is measured against, and the
/// fp32-vs-bf16 baseline for mixed precision. GFLOP/s = 2 n^3 / time.
/// </summary>
[MemoryDiagnoser(false)]
public class MatmulBenchmarks
{
    private Tensor _a = null!;
    private Tensor _b = null!;

    /// <summary>Matrix size n of an (n, n) @ (n, n) product.</summary>
    [Params(256, 1024)]
    public int N { get; set; }

    /// <summary>Element type.</summary>
    [Params(ScalarType.Float32, ScalarType.BFloat16)]
    public ScalarType DType { get; set; }

    /// <summary>Device: cpu, or cuda when a CUDA backend is referenced.</summary>
    [Params("cpu")]
    public string Device { get; set; } = "cpu";

    [GlobalSetup]
    public void Setup()
    {
        torch.manual_seed(0);
        _a = torch.randn(N, N, dtype: DType, device: torch.device(Device));
        _b = torch.randn(N, N, dtype: DType, device: torch.device(Device));
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _a.Dispose();
        _b.Dispose();
    }

    [Benchmark]
    public void Matmul()
    {
        using var c = torch.matmul(_a, _b);
        if (c.device_type == DeviceType.CUDA) torch.cuda.synchronize();
    }
}
