using System.Diagnostics;
using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Quantization;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Evaluation;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// What a QLoRA-style quantized base costs and saves: a preset trained briefly on Tiny Shakespeare (char tokens, 90/10
/// split), then the same weights evaluated in fp32, int8 and NF4 (<see cref="ModelQuantization"/>, block 64) on the
/// same held-out blocks: the base's linear-weight bytes and whole-model bytes before and after, and the validation
/// loss and perplexity of each. Prints one JSON line. Results: docs/benchmarks.md, "Quantized base (QLoRA-style)".
/// <code>
/// dotnet run -c Release --project benchmarks/YingHub.Moe.Benchmarks -- quantized --preset makemoe [--steps 300] [--batch 16]
///     [--eval-batches 50] [--block-size 64] [--seed 1337] [--data FILE]
/// </code>
/// </summary>
internal static class QuantizedBase
{
    public static int Run(string[] args)
    {
        var a = new BenchmarkArguments(args);
        string preset = a.Get("--preset", "makemoe");
        int steps = a.Int("--steps", 300), batch = a.Int("--batch", 16), evalBatches = a.Int("--eval-batches", 50), seed = a.Int("--seed", 1337);
        int blockSize = a.Int("--block-size", 64);
        string data = a.Corpus();
        var tokenizer = CharTokenizer.FromCorpus(File.ReadAllText(data));
        var options = MoePresets.Get(preset);
        options.VocabSize = tokenizer.VocabSize;
        int block = options.ContextLength;
        string cache = Path.Combine(Path.GetTempPath(), $"yinghub-quantized-{Environment.ProcessId}.tokens");
        using var corpus = TokenCorpus.Open(data, tokenizer, cache);

        torch.manual_seed(seed);
        var clock = Stopwatch.StartNew();
        Dictionary<string, torch.Tensor> trained;
        using (var model = new MoeForCausalLM(options))
        {
            var (train, validation) = BlockSampler.Split(corpus, block, seed);
            var trainerOptions = new TrainerOptions
            {
                Steps = steps, BatchSize = batch, LearningRate = 2e-3, MinLearningRate = 2e-4, WarmupSteps = Math.Max(1, steps / 20),
                EvalInterval = steps, EvalBatches = 4, LogInterval = Math.Max(1, steps / 5), Seed = seed,
            };
            using var trainer = new Trainer(model, train, validation, trainerOptions);
            trainer.Progress += p =>
            {
                if (p.ValidationLoss is { } v) Console.Error.WriteLine(FormattableString.Invariant($"step {p.Step}: train {p.TrainLoss:F3} val {v:F3}"));
            };
            trainer.Run();
            trained = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone());
        }

        double trainMinutes = clock.Elapsed.TotalMinutes;
        var runs = new List<(string Format, QuantizationReport? Report, long ModelBytes, LossEvaluation Result, double Seconds)>();
        foreach (QuantizationKind? kind in new QuantizationKind?[] { null, QuantizationKind.Int8, QuantizationKind.Nf4 })
        {
            using var model = new MoeForCausalLM(options);
            model.load_state_dict(trained);
            long modelBytes = ModelQuantization.TensorBytes(model);
            var report = kind is { } k ? ModelQuantization.Quantize(model, new QuantizationOptions { Kind = k, BlockSize = blockSize }) : null;
            var (_, validation) = BlockSampler.Split(corpus, block, seed); // the same held-out blocks for every format
            var eval = Stopwatch.StartNew();
            var result = LossEvaluator.Evaluate(model, validation, evalBatches, batch);
            runs.Add((kind?.ToString().ToLowerInvariant() ?? "fp32", report, report?.ModelBytesAfter ?? modelBytes, result, eval.Elapsed.TotalSeconds));
        }

        long floatLinear = runs.First(r => r.Report is not null).Report!.WeightBytesBefore; // the quantized layers' weights in fp32
        var rows = runs.Select(r => new
        {
            format = r.Format,
            linear_weight_bytes = r.Report?.WeightBytesAfter ?? floatLinear,
            model_bytes = r.ModelBytes,
            groups = r.Report?.Groups.Select(g => new { kind = g.Kind, layers = g.Layers, elements = g.Elements, bytes_before = g.BytesBefore, bytes_after = g.BytesAfter }),
            val_loss = Math.Round(r.Result.Loss, 4), val_perplexity = Math.Round(r.Result.Perplexity, 3), eval_seconds = Math.Round(r.Seconds, 1),
        }).ToList();

        foreach (var t in trained.Values) t.Dispose();
        corpus.Dispose();
        File.Delete(cache);
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            library = "YingHub.Moe", preset, steps, batch, block, seed, block_size = blockSize, eval_batches = evalBatches,
            eval_tokens = (long)evalBatches * batch * block, train_minutes = Math.Round(trainMinutes, 1), threads = torch.get_num_threads(), results = rows,
        }));
        return 0;
    }
}
