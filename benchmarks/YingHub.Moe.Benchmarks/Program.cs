using BenchmarkDotNet.Running;
using YingHub.Moe.Core.Runtime;

// Usage: dotnet run -c Release --project benchmarks/YingHub.Moe.Benchmarks -- --filter '*Matmul*' [--job short]
// (BenchmarkDotNet's own options; --list flat lists the benchmarks). Results and machines: docs/benchmarks.md.
// Every job runs in process (--inProcess is always added): the build output is the one the libstdc++ compat step
// has treated, and libtorch's thread pool is set up once.
TorchRuntime.EnsureInitialized();
string[] arguments = args.Contains("--inProcess", StringComparer.OrdinalIgnoreCase) ? args : [.. args, "--inProcess"];
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(arguments);
