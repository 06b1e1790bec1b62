using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;

namespace YingHub.Moe.Cli;

/// <summary>
/// <c>yinghub doctor</c>: checks that libtorch loads here, measures the fp32 and bf16 matmul throughput and says which
/// training precision this machine should use.
/// </summary>
internal static class DoctorCommand
{
    public static Command Create()
    {
        var size = new Option<int>("--size") { Description = "Matrix size of the matmul probe.", DefaultValueFactory = _ => 1024 };
        var command = new Command("doctor", "Check that libtorch initialises on this machine, measure its fp32 and bf16 matmul throughput and say which training precision to use.") { size };
        command.SetAction(parse => Cli.Run(() => Run(parse.GetValue(size))));
        return command;
    }

    private static int Run(int n)
    {
        if (n < 16 || n > 16384) throw new CliException($"--size must be in [16, 16384]; got {n}.", 2);
        Cli.RequireTorch();

        Console.WriteLine($"os: {RuntimeInformation.OSDescription} ({RuntimeInformation.OSArchitecture}), cores: {Environment.ProcessorCount}");
        Console.WriteLine($"torch threads: {torch.get_num_threads()}, cuda available: {torch.cuda.is_available()}");
        double fp32 = MatmulGflops(n, torch.ScalarType.Float32), bf16 = MatmulGflops(n, torch.ScalarType.BFloat16);
        Console.WriteLine($"matmul fp32 {n}x{n}: {fp32:F1} GFLOP/s (best of 5)");
        Console.WriteLine($"matmul bf16 {n}x{n}: {bf16:F1} GFLOP/s (best of 5), {bf16 / fp32:F1}x fp32; native bf16 in the CPU flags: {NativeBf16Flags()}");
        Console.WriteLine(RecommendPrecision(fp32, bf16));
        return 0;
    }

    /// <summary>
    /// The training precision to use, from the measured products: bf16 autocast when its products run at least
    /// <see cref="Bf16Pays"/> times as fast as fp32's (then a model with hidden size 192 or more trains faster in bf16;
    /// docs/benchmarks.md has the measurements), fp32 otherwise (bf16 would only add casts).
    /// </summary>
    internal static string RecommendPrecision(double fp32Gflops, double bf16Gflops) => bf16Gflops >= Bf16Pays * fp32Gflops
        ? $"precision: train with --amp bf16 (bf16 products are {bf16Gflops / fp32Gflops:F1}x fp32's here; for small models, hidden size under 192, bf16 gains little: compare with the throughput benchmark)"
        : $"precision: train in fp32 (the default; bf16 products are only {bf16Gflops / fp32Gflops:F1}x fp32's here, so --amp bf16 would add casts without a gain)";

    /// <summary>How many times fp32's matmul throughput bf16's must reach before bf16 training pays (its casts and fp32 norms, softmax and router cost the rest).</summary>
    internal const double Bf16Pays = 2.0;

    /// <summary>The CPU's native bf16 flags from /proc/cpuinfo (avx512_bf16, amx_bf16), "none", or "unknown" off Linux.</summary>
    private static string NativeBf16Flags()
    {
        try
        {
            string? flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal));
            if (flags is null) return "unknown";
            var found = flags.Split(' ').Where(f => f is "avx512_bf16" or "amx_bf16").Distinct().ToArray();
            return found.Length > 0 ? string.Join(", ", found) : "none";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }

    private static double MatmulGflops(int n, torch.ScalarType dtype)
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.randn(n, n, dtype: dtype);
        var b = torch.randn(n, n, dtype: dtype);
        torch.matmul(a, b).Dispose(); // warm-up
        double best = double.MaxValue;
        for (int i = 0; i < 5; i++)
        {
            var sw = Stopwatch.StartNew();
            torch.matmul(a, b).Dispose();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }

        return 2.0 * n * n * n / best / 1e9;
    }
}
