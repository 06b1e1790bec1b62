using System.Diagnostics;
using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Core.Modules;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// The generation issue's KV-cache target as a plain timing loop on the calling thread (the main thread, as in
/// <c>yinghub generate</c>): greedy decoding of <c>--tokens</c> new tokens from a one-token prompt with the KV cache and
/// by recomputing the window per token, on a preset's shape with char tokens and untrained weights. Each round times
/// five cached decodes (their median) and one recomputation, so the two are measured seconds apart; the speed-up is
/// reported per round and as the median over rounds. BenchmarkDotNet's <see cref="GenerationBenchmarks"/> times the same
/// calls in its own harness and has come out lower (docs/benchmarks.md); <c>--thread</c> runs this loop on a started
/// thread instead of the calling one. <c>--no-row-kernel</c> decodes on libtorch alone instead of the library's
/// decoding kernels (<see cref="RowProduct"/>, <c>ExpertRow</c>, <c>AttentionRow</c>); <c>--ab-kernel</c> adds, per
/// round, the median of five cached decodes on libtorch alone, timed just before the kernels'. It also checks that both ways pick the same greedy tokens
/// within the context. Prints one JSON line.
/// <code>
/// dotnet run -c Release --project benchmarks/YingHub.Moe.Benchmarks -- decode [--preset yinghub-v2 | --checkpoint DIR] [--tokens 256] [--rounds 5] [--threads N] [--thread] [--no-row-kernel | --ab-kernel]
/// </code>
/// </summary>
internal static class DecodingSpeed
{
    private const int CachedPerRound = 5;

    public static int Run(string[] args)
    {
        var a = new BenchmarkArguments(args);
        if (a.Get("--threads", "") is { Length: > 0 }) torch.set_num_threads(a.Int("--threads", 0));
        string preset = a.Get("--preset", "yinghub-v2");
        int tokens = a.Int("--tokens", 256), rounds = a.Int("--rounds", 5);
        if (tokens < 1) throw new ArgumentException($"--tokens {tokens}: at least 1.", "--tokens");
        if (rounds < 1) throw new ArgumentException($"--rounds {rounds}: at least 1.", "--rounds");

        torch.manual_seed(0);
        // --checkpoint: a saved model as `yinghub generate` loads it, to tell the weights' load path from the CLI's
        string checkpoint = a.Get("--checkpoint", "");
        using var model = checkpoint.Length > 0 ? YingHub.Moe.Core.Checkpoints.MoeCheckpoint.Load(checkpoint) : UntrainedModel(preset);
        model.eval();
        var generator = new TokenGenerator(model);
        var cached = new SamplingOptions { MaxNewTokens = tokens, Greedy = true };
        var recompute = new SamplingOptions { MaxNewTokens = tokens, Greedy = true, UseCache = false };
        bool ab = a.Has("--ab-kernel");
        RowProduct.Enabled = !a.Has("--no-row-kernel");
        var results = new List<(double Cached, double Recompute, double Libtorch)>();
        bool? sameTokens = null;
        double Cached() => Statistics.Median(Enumerable.Range(0, CachedPerRound).Select(_ => Time(() => generator.Generate([0], cached))).ToArray());
        void Measure()
        {
            for (int w = 0; w < 3; w++) generator.Generate([0], cached);
            // within the context both ways must pick the same greedy tokens (past it they see different windows)
            int within = Math.Min(tokens, model.Options.ContextLength - 1);
            sameTokens = generator.Generate([0], cached).Take(within).SequenceEqual(generator.Generate([0], recompute).Take(within));
            for (int r = 0; r < rounds; r++)
            {
                double libtorch = double.NaN;
                if (ab)
                {
                    RowProduct.Enabled = false;
                    libtorch = Cached();
                    RowProduct.Enabled = true;
                }

                double withCache = Cached();
                results.Add((withCache, Time(() => generator.Generate([0], recompute)), libtorch));
            }
        }

        if (a.Has("--thread"))
        {
            var thread = new Thread(Measure);
            thread.Start();
            thread.Join();
        }
        else
        {
            Measure();
        }

        var ratios = results.Select(r => r.Recompute / r.Cached).Order().ToArray();
        double medianCached = Statistics.Median(results.Select(r => r.Cached));
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            library = "YingHub.Moe", mode = "decode", preset = checkpoint.Length > 0 ? checkpoint : preset, tokens, context = model.Options.ContextLength, threads = torch.get_num_threads(),
            on_started_thread = a.Has("--thread"), cpu = TrainingThroughput.CpuName(),
            cached_ms = results.Select(r => Math.Round(r.Cached, 1)).ToArray(),
            recompute_ms = results.Select(r => Math.Round(r.Recompute, 1)).ToArray(),
            speedup_median = Math.Round(Statistics.Median(ratios), 2), speedup_min = Math.Round(ratios[0], 2), speedup_max = Math.Round(ratios[^1], 2),
            cached_tokens_per_s = Math.Round(tokens / (medianCached / 1000), 1),
            same_greedy_tokens_within_context = sameTokens,
            row_kernel = RowProduct.Enabled && RowProduct.Supported,
            cached_libtorch_products_ms = ab ? results.Select(r => Math.Round(r.Libtorch, 1)).ToArray() : null,
            row_kernel_speedup_median = ab ? Math.Round(Statistics.Median(results.Select(r => r.Libtorch / r.Cached)), 2) : (double?)null,
        }));
        return 0;
    }

    /// <summary>
    /// A preset's model with untrained weights all drawn by its scheme, so every layer acts: a zero start of the residual
    /// projections (the makemoe preset's) would make each layer the identity until trained.
    /// </summary>
    internal static MoeForCausalLM UntrainedModel(string preset)
    {
        var options = MoePresets.Get(preset);
        options.ResidualInit = null;
        return new MoeForCausalLM(options);
    }

    private static double Time(Action action)
    {
        var watch = Stopwatch.StartNew();
        action();
        return watch.Elapsed.TotalMilliseconds;
    }
}
