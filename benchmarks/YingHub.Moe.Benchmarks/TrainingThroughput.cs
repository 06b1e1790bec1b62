using System.Diagnostics;
using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Diagnostics;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// Training throughput of a preset on Tiny Shakespeare with char tokens, as the training issue's targets measure it:
/// the library's <see cref="Trainer"/> (AdamW, clipping, router losses, everything a real run does), timed from the
/// trainer's own per-step clock after warm-up steps, with tokens/s and model FLOPs utilisation against this
/// machine's measured matmul peak. Prints one JSON line. Compare with <c>../shared/bench/makemoe_throughput.py</c>
/// run in the same sitting (benchmarks/training-throughput.sh runs both).
/// <code>
/// dotnet run -c Release --project benchmarks/YingHub.Moe.Benchmarks -- throughput --preset makemoe --batch 16 --block 32 [--steps 60] [--warmup 10] [--precision fp32|bf16|fp16] [--data FILE]
///     [--embd C --heads H --kv-heads G --layers L --experts E --deep D --intermediate I] [--log-interval 10] [--profile] [--unfused]
/// </code>
/// </summary>
internal static class TrainingThroughput
{
    public static int Run(string[] args)
    {
        var a = new BenchmarkArguments(args);
        string preset = a.Get("--preset", "makemoe");
        int batch = a.Int("--batch", 16), steps = a.Int("--steps", 60), warmup = a.Int("--warmup", 10);
        int interval = a.Int("--log-interval", 10);
        if (steps % interval != 0 || warmup % interval != 0) throw new ArgumentException($"--steps {steps} and --warmup {warmup} must be multiples of --log-interval {interval}.");
        var precision = Enum.Parse<TrainingPrecision>(a.Get("--precision", "fp32"), ignoreCase: true);
        bool fused = !a.Has("--unfused");
        string data = a.Corpus();
        string text = File.ReadAllText(data);
        var tokenizer = CharTokenizer.FromCorpus(text);
        var options = MoePresets.Get(preset);
        options.VocabSize = tokenizer.VocabSize;
        // shape overrides, e.g. the makemoe preset at the yinghub-v2 shape, which is what the makeMoE reference runs there
        options.HiddenSize = a.Int("--embd", options.HiddenSize);
        options.NumHeads = a.Int("--heads", options.NumHeads);
        options.NumLayers = a.Int("--layers", options.NumLayers);
        options.NumExperts = a.Int("--experts", options.NumExperts);
        options.DeepExperts = a.Int("--deep", options.DeepExperts);
        if (a.Has("--kv-heads")) options.NumKeyValueHeads = a.Int("--kv-heads", options.NumHeads);
        if (a.Has("--intermediate")) options.IntermediateSize = a.Int("--intermediate", 0);
        options.TopK = Math.Min(options.TopK, options.NumExperts);
        int block = a.Int("--block", options.ContextLength);
        options.ContextLength = Math.Max(options.ContextLength, block);

        torch.manual_seed(1337);
        using var model = new MoeForCausalLM(options);
        string cache = Path.Combine(Path.GetTempPath(), $"yinghub-bench-{Environment.ProcessId}.tokens");
        using var corpus = TokenCorpus.Open(data, tokenizer, cache);
        var (train, _) = BlockSampler.Split(corpus, block, seed: 1337);
        using var trainer = new Trainer(model, train, null, new TrainerOptions
        {
            // log (host reads, router statistics) every `interval` steps as a real run does; ms_per_step is the mean over each interval
            Steps = warmup + steps + 1, BatchSize = batch, LearningRate = 1e-3, WarmupSteps = 0, LogInterval = interval, EvalInterval = warmup + steps + 1, EvalBatches = 1,
            Precision = precision, FusedAdamW = fused,
        });
        var times = new List<double>();
        var losses = new List<double>();
        trainer.Progress += p =>
        {
            if (p.Metrics is { } m && m.TryGetValue(MetricNames.MillisecondsPerStep, out double ms) && p.Step > warmup)
            {
                times.Add(ms);
                losses.Add(m[MetricNames.TrainLoss]);
            }
        };
        if (a.Has("--profile")) Profile(model, train, batch, precision, warmup, steps, fused);
        long rssBefore = Process.GetCurrentProcess().WorkingSet64;
        trainer.Run();
        File.Delete(cache);
        double meanMs = times.Average(), medianMs = Statistics.Median(times); // each entry: the mean step time of one log interval
        double tokensPerStep = (double)batch * block;
        double flopsPerStep = ModelFlops.TrainingFlopsPerToken(model, block) * tokensPerStep;
        double peak32 = ModelFlops.MeasureMatmulPeak();
        // MFU against the peak of the precision the products run in (bf16's is about 4x fp32's on a CPU with avx512_bf16)
        double peak = precision switch
        {
            TrainingPrecision.Bf16 => ModelFlops.MeasureMatmulPeak(torch.ScalarType.BFloat16),
            TrainingPrecision.Fp16 => ModelFlops.MeasureMatmulPeak(torch.ScalarType.Float16),
            _ => peak32,
        };
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            library = "YingHub.Moe", preset, log_interval = interval, embd = options.HiddenSize, heads = options.NumHeads, layers = options.NumLayers, experts = options.NumExperts, deep = options.DeepExperts, precision = precision.ToString().ToLowerInvariant(), adamw = fused ? "fused" : "per-parameter", batch, block, steps = times.Count * interval, warmup,
            threads = torch.get_num_threads(), cpu = CpuName(),
            train_tokens_per_s = Math.Round(tokensPerStep / (meanMs / 1000), 1), step_ms = Math.Round(meanMs, 2), step_ms_median = Math.Round(medianMs, 2),
            params_total = model.ParameterCount, params_active = model.ActiveParameterCount,
            gflop_per_step = Math.Round(flopsPerStep / 1e9, 3), matmul_peak_fp32_gflops = Math.Round(peak32 / 1e9, 1),
            mfu_vs_fp32_peak = Math.Round(flopsPerStep / (meanMs / 1000) / peak32, 4),
            matmul_peak_gflops = Math.Round(peak / 1e9, 1), mfu_vs_precision_peak = Math.Round(flopsPerStep / (meanMs / 1000) / peak, 4), last_loss = Math.Round(losses[^1], 4),
            rss_mb = Process.GetCurrentProcess().WorkingSet64 / (1 << 20), rss_mb_at_start = rssBefore / (1 << 20),
            peak_rss_mb = Process.GetCurrentProcess().PeakWorkingSet64 / (1 << 20), // the process's high-water mark (VmHWM): what must fit in memory
        }));
        return 0;
    }

    /// <summary>Where a step's time goes: forward, backward, clipping, optimizer (means over <paramref name="steps"/> after warm-up).</summary>
    private static void Profile(MoeForCausalLM model, BlockSampler train, int batch, TrainingPrecision precision, int warmup, int steps, bool fused)
    {
        using var adam = YingHub.Moe.Training.Optimization.GroupedAdamW.Create(model.named_parameters(), new() { LearningRate = 1e-4, Fused = fused });
        using var clipper = new YingHub.Moe.Training.Optimization.GroupedGradientClipper(model.named_parameters(), new());
        var phases = new double[5];
        string[] names = ["data", "forward", "backward", "clip", "optimizer"];
        model.train();
        for (int i = 0; i < warmup + steps; i++)
        {
            using var scope = torch.NewDisposeScope();
            var clock = Stopwatch.StartNew();
            var marks = new double[5];
            var (x, y) = train.Next(batch, model.Device);
            marks[0] = clock.Elapsed.TotalMilliseconds;
            CausalLMOutput output;
            using (precision == TrainingPrecision.Fp32 ? null : YingHub.Moe.Core.Precision.Autocast.Enable(precision == TrainingPrecision.Bf16 ? torch.ScalarType.BFloat16 : torch.ScalarType.Float16))
                output = model.call(new CausalLMInput(x, y));
            marks[1] = clock.Elapsed.TotalMilliseconds;
            output.Loss!.backward();
            marks[2] = clock.Elapsed.TotalMilliseconds;
            clipper.ClipGradients(1.0);
            marks[3] = clock.Elapsed.TotalMilliseconds;
            adam.Optimizer.step();
            model.zero_grad();
            marks[4] = clock.Elapsed.TotalMilliseconds;
            if (i < warmup) continue;
            for (int p = 0; p < 5; p++) phases[p] += (marks[p] - (p == 0 ? 0 : marks[p - 1])) / steps;
        }

        Console.WriteLine("profile (ms/step): " + string.Join(", ", names.Select((n, p) => $"{n} {phases[p]:F1}")) + $", total {phases.Sum():F1}");
    }

    internal static string CpuName()
    {
        try
        {
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown";
        }
        catch (IOException)
        {
            return "unknown";
        }
    }
}
