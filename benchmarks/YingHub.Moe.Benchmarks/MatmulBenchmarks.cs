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

/// <summary>
/// The products of a <c>yinghub-v2</c> training step at their own shapes (batch 32 × block 128 tokens, C 192,
/// 6 heads, expert width 768, about N·k/E = 1,365 rows per expert), fp32 against bf16: the peaks that the step's
/// model-FLOPs utilisation should be read against for each precision (a 1024² square product flatters both).
/// GFLOP/s = 2 · batch · rows · in · out / time.
/// </summary>
[MemoryDiagnoser(false)]
public class ModelShapeMatmulBenchmarks
{
    private Tensor _x = null!;
    private Tensor _w = null!;

    /// <summary>The product: name, batch, rows, in, out.</summary>
    public static IEnumerable<string> Shapes => ["qkv 1x4096x192x576", "attn_out 1x4096x192x192", "scores 192x128x32x128", "probs_v 192x128x128x32",
        "expert_fc1 1x1365x192x768", "deep_fc2 1x1365x768x768", "expert_fc2 1x1365x768x192"];

    /// <summary>One of <see cref="Shapes"/>.</summary>
    [ParamsSource(nameof(Shapes))]
    public string Shape { get; set; } = "qkv 1x4096x192x576";

    /// <summary>Element type.</summary>
    [Params(ScalarType.Float32, ScalarType.BFloat16)]
    public ScalarType DType { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        long[] d = Shape.Split(' ')[1].Split('x').Select(long.Parse).ToArray(); // batch, rows, in, out
        torch.manual_seed(0);
        _x = torch.randn(d[0], d[1], d[2], dtype: DType);
        _w = torch.randn(d[0], d[2], d[3], dtype: DType);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _x.Dispose();
        _w.Dispose();
    }

    [Benchmark]
    public void Product()
    {
        using var y = _x.size(0) == 1 ? _x[0].mm(_w[0]) : torch.bmm(_x, _w); // a linear layer is one mm
    }
}
