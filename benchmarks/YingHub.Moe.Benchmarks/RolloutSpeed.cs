using System.Diagnostics;
using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Generation;
using YingHub.Moe.Core.Kernels;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// The rollout issue's target as a plain timing loop: tokens per second of batched KV-cache sampling (what an RL
/// collector does) at several batch sizes, on a preset's shape with char tokens and untrained weights. Every row gets a
/// random prompt of the same length (<c>--prompt</c>, so nothing is padded) and samples <c>--tokens</c> new tokens
/// (temperature 1, fixed seed, no stop sequence: every row runs to the end); the time includes the prompt's forward.
/// Per round each batch size is timed once, in turn, so all sizes see the same machine; the median over
/// <c>--rounds</c> is reported, with the ratio of the largest batch's tokens/s to batch 1's.
/// <c>--batch-kernels off</c> runs batches of more than one row on libtorch's products (the single-row kernels stay
/// on); <c>--ab</c> times both ways per round, off just before on. Prints one JSON line.
/// <code>
/// dotnet run -c Release --project benchmarks/YingHub.Moe.Benchmarks -- rollout [--preset yinghub-v2] [--batches 1,8,32] [--prompt 16] [--tokens 64] [--rounds 5] [--threads N] [--batch-kernels on|off] [--ab]
/// </code>
/// </summary>
internal static class RolloutSpeed
{
    private const int WarmupRuns = 2;
    private const ulong PromptSeed = 1;
    private const long SamplingSeed = 7;

    public static int Run(string[] args)
    {
        var a = new BenchmarkArguments(args);
        if (a.Get("--threads", "") is { Length: > 0 }) torch.set_num_threads(a.Int("--threads", 0));
        string preset = a.Get("--preset", "yinghub-v2");
        int promptLength = a.Int("--prompt", 16), tokens = a.Int("--tokens", 64), rounds = a.Int("--rounds", 5);
        int[] batches = a.Get("--batches", "1,8,32").Split(',').Select(s => int.TryParse(s, out int v) && v >= 1
            ? v : throw new ArgumentException($"--batches {a.Get("--batches", "")}: positive integers separated by commas.", "--batches")).ToArray();
        string kernels = a.Get("--batch-kernels", "on");
        if (kernels is not ("on" or "off")) throw new ArgumentException($"--batch-kernels {kernels}: on or off.", "--batch-kernels");
        bool ab = a.Has("--ab");
        if (rounds < 1) throw new ArgumentException($"--rounds {rounds}: at least 1.", "--rounds");
        if (tokens < 1) throw new ArgumentException($"--tokens {tokens}: at least 1.", "--tokens");

        torch.manual_seed(0);
        using var model = DecodingSpeed.UntrainedModel(preset);
        model.eval();
        int context = model.Options.ContextLength;
        if (promptLength < 1 || promptLength + tokens > context)
            throw new ArgumentException($"--prompt {promptLength} + --tokens {tokens} must fit the context {context} (past it the cache slides: another benchmark).", "--prompt");
        var generator = new TokenGenerator(model);
        var sampling = new SamplingOptions { MaxNewTokens = tokens, Seed = SamplingSeed };
        var random = new Random((int)PromptSeed);
        var prompts = Enumerable.Range(0, batches.Max())
            .Select(_ => (IReadOnlyList<long>)Enumerable.Range(0, promptLength).Select(_ => (long)random.Next(model.Options.VocabSize)).ToArray())
            .ToArray();

        double TokensPerSecond(int batch, bool batchKernels)
        {
            FewRows.Enabled = batchKernels;
            var watch = Stopwatch.StartNew();
            long[][] output = generator.GenerateBatch(prompts[..batch], sampling);
            double seconds = watch.Elapsed.TotalSeconds;
            FewRows.Enabled = true;
            return output.Sum(o => o.Length) / seconds;
        }

        foreach (int batch in batches)
            for (int w = 0; w < WarmupRuns; w++) TokensPerSecond(batch, kernels == "on");
        var on = batches.ToDictionary(b => b, _ => new List<double>());
        var off = batches.ToDictionary(b => b, _ => new List<double>());
        for (int r = 0; r < rounds; r++)
        {
            foreach (int batch in batches)
            {
                if (ab) off[batch].Add(TokensPerSecond(batch, batchKernels: false));
                (ab || kernels == "on" ? on : off)[batch].Add(TokensPerSecond(batch, batchKernels: ab || kernels == "on"));
            }
        }

        var measured = ab || kernels == "on" ? on : off;
        int smallest = batches.Min(), largest = batches.Max();
        double Median(Dictionary<int, List<double>> d, int b) => Math.Round(Statistics.Median(d[b]), 1);
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            library = "YingHub.Moe", mode = "rollout", preset, prompt = promptLength, tokens, rounds, threads = torch.get_num_threads(),
            cpu = TrainingThroughput.CpuName(), batch_kernels = ab ? "ab" : kernels,
            tokens_per_s = batches.ToDictionary(b => b.ToString(), b => Median(measured, b)),
            tokens_per_s_rounds = batches.ToDictionary(b => b.ToString(), b => measured[b].Select(v => Math.Round(v, 1)).ToArray()),
            ratio_largest_to_smallest = Math.Round(Median(measured, largest) / Median(measured, smallest), 2),
            tokens_per_s_batch_kernels_off = ab ? batches.ToDictionary(b => b.ToString(), b => Median(off, b)) : null,
            batch_kernel_speedup = ab ? batches.ToDictionary(b => b.ToString(), b => Math.Round(Median(on, b) / Median(off, b), 2)) : null,
        }));
        return 0;
    }
}
