using System.CommandLine;
using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;

namespace YingHub.Moe.Cli;

/// <summary><c>yinghub doctor</c>: checks that libtorch loads here and measures the fp32 matmul peak.</summary>
internal static class DoctorCommand
{
    public static Command Create()
    {
        var size = new Option<int>("--size") { Description = "Matrix size of the matmul probe.", DefaultValueFactory = _ => 1024 };
        var command = new Command("doctor", "Check that libtorch initialises on this machine and measure its fp32 matmul throughput.") { size };
        command.SetAction(parse => Cli.Run(() => Run(parse.GetValue(size))));
        return command;
    }

    private static int Run(int n)
    {
        if (n < 16 || n > 16384) throw new CliException($"--size must be in [16, 16384]; got {n}.", 2);
        Cli.RequireTorch();

        Console.WriteLine($"os: {RuntimeInformation.OSDescription} ({RuntimeInformation.OSArchitecture}), cores: {Environment.ProcessorCount}");
        Console.WriteLine($"torch threads: {torch.get_num_threads()}, cuda available: {torch.cuda.is_available()}");
        Console.WriteLine($"matmul fp32 {n}x{n}: {MatmulGflops(n):F1} GFLOP/s (best of 5)");
        return 0;
    }

    private static double MatmulGflops(int n)
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.randn(n, n);
        var b = torch.randn(n, n);
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
