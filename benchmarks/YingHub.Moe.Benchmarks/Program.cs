using BenchmarkDotNet.Running;
using YingHub.Moe.Core.Runtime;

// Usage: dotnet run -c Release --project benchmarks/YingHub.Moe.Benchmarks -- --filter '*Matmul*' [--job short]
//    or: ... -- throughput --preset makemoe --batch 16 --block 32 [--precision bf16]   (training tokens/s and MFU, one JSON line)
//    or: ... -- quality --preset makemoe [--steps 5000] [--lr 2e-3] ...   (validation loss after a token budget, one JSON line)
//    or: ... -- decode --preset yinghub-v2 [--tokens 256] [--thread]   (KV cache vs recomputation on the calling thread, one JSON line)
//    or: ... -- rollout --preset yinghub-v2 [--batches 1,8,32] [--ab]   (batched KV-cache sampling tokens/s per batch size, one JSON line)
//    or: ... -- step-profile --preset yinghub-v2 --batch 32 --block 128   (forward/backward ms of each part of a layer, fp32 and bf16, and products at model shapes)
//    or: ... -- mixture [--base-steps 600] [--steps 200] [--experts 3]   (Hydra-beta gated LoRA mixture vs base and per-half adapters, one JSON line)
//    or: ... -- hydra [--steps 200] [--chunk 600] [--per-domain 200]   (Hydra domain discovery and routing accuracy, JSON lines)
//    or: ... -- quantized --preset makemoe [--steps 300]   (base memory and validation perplexity in fp32 / int8 / NF4, one JSON line)
//    or: ... -- serve-load --url http://127.0.0.1:18080 [--clients 1,4,16]   (requests/s and time to first token of a running yinghub serve)
// (BenchmarkDotNet's own options; --list flat lists the benchmarks). Results and machines: docs/benchmarks.md.
// Every job runs in process (--inProcess is always added): the build output is the one the libstdc++ compat step
// has treated, and libtorch's thread pool is set up once.
TorchRuntime.EnsureInitialized();
if (args.Length > 0 && args[0] == "throughput") return YingHub.Moe.Benchmarks.TrainingThroughput.Run(args[1..]); // not BenchmarkDotNet: see TrainingThroughput
if (args.Length > 0 && args[0] == "quality") return YingHub.Moe.Benchmarks.TrainingQuality.Run(args[1..]);
if (args.Length > 0 && args[0] == "decode") return YingHub.Moe.Benchmarks.DecodingSpeed.Run(args[1..]);
if (args.Length > 0 && args[0] == "serve-load") return YingHub.Moe.Benchmarks.ServeLoad.Run(args[1..]);
if (args.Length > 0 && args[0] == "step-profile") return YingHub.Moe.Benchmarks.StepProfile.Run(args[1..]);
if (args.Length > 0 && args[0] == "mixture") return YingHub.Moe.Benchmarks.HydraMixture.Run(args[1..]);
if (args.Length > 0 && args[0] == "hydra") return YingHub.Moe.Benchmarks.HydraRouting.Run(args[1..]);
if (args.Length > 0 && args[0] == "quantized") return YingHub.Moe.Benchmarks.QuantizedBase.Run(args[1..]);
if (args.Length > 0 && args[0] == "rollout") return YingHub.Moe.Benchmarks.RolloutSpeed.Run(args[1..]);
string[] arguments = args.Contains("--inProcess", StringComparer.OrdinalIgnoreCase) ? args : [.. args, "--inProcess"];
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(arguments);
return 0;
