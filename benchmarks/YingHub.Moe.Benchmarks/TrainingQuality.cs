using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Evaluation;

namespace YingHub.Moe.Benchmarks;

/// <summary>
/// The training issue's quality target as a re-runnable measurement: a preset trained on Tiny Shakespeare (char
/// tokens, 90/10 split) for a token budget with a given recipe, then the validation loss over many held-out batches.
/// Prints one JSON line. The recipe flags exist to compare recipes on the same budget; the library's defaults are
/// what <c>yinghub train</c> uses.
/// <code>
/// dotnet run -c Release --project benchmarks/YingHub.Moe.Benchmarks -- quality --preset makemoe [--steps 5000] [--batch 16]
///     [--lr 2e-3] [--min-lr-ratio 0.1] [--warmup 250] [--wd 0.1] [--beta2 0.99] [--clip 1.0] [--dropout X] [--attention-dropout X] [--init kaiming] [--residual-init zero]
///     [--aux 0] [--zloss 0] [--eval-batches 200] [--threads N] [--unfused] [--seed 1337] [--data FILE]
/// </code>
/// </summary>
internal static class TrainingQuality
{
    public static int Run(string[] args)
    {
        var a = new BenchmarkArguments(args);
        double D(string name, double fallback) => a.Double(name, fallback);
        int I(string name, int fallback) => a.Int(name, fallback);

        if (a.Get("--threads", "") is { Length: > 0 }) torch.set_num_threads(I("--threads", 0));
        string preset = a.Get("--preset", "makemoe");
        int steps = I("--steps", 5000), batch = I("--batch", 16), evalBatches = I("--eval-batches", 200), seed = I("--seed", 1337);
        double lr = D("--lr", 2e-3);
        string data = a.Corpus();
        var tokenizer = CharTokenizer.FromCorpus(File.ReadAllText(data));
        var options = MoePresets.Get(preset);
        options.VocabSize = tokenizer.VocabSize;
        options.Dropout = D("--dropout", options.Dropout);
        options.AttentionDropout = D("--attention-dropout", options.AttentionDropout);
        options.LoadBalancingCoef = D("--aux", options.LoadBalancingCoef);
        options.ZLossCoef = D("--zloss", options.ZLossCoef);
        if (a.Get("--init", "") is { Length: > 0 } init) (options.Init, options.ResidualInit) = (Enum.Parse<InitScheme>(init, ignoreCase: true), null); // with its own residual convention, as the CLI's --init
        if (a.Get("--residual-init", "") is { Length: > 0 } start) options.ResidualInit = Enum.Parse<ResidualInitScheme>(start, ignoreCase: true);
        int block = I("--block", options.ContextLength);
        options.ContextLength = Math.Max(options.ContextLength, block);

        var trainerOptions = new TrainerOptions
        {
            Steps = steps, BatchSize = batch, LearningRate = lr, MinLearningRate = lr * D("--min-lr-ratio", 0.1),
            WarmupSteps = I("--warmup", Math.Max(1, steps / 20)), WeightDecay = D("--wd", 0.1), Beta2 = D("--beta2", 0.99),
            GradientClip = D("--clip", 1.0), FusedAdamW = !a.Has("--unfused"), EvalInterval = Math.Min(500, steps), EvalBatches = 8, LogInterval = Math.Min(100, steps), Seed = seed,
        };

        torch.manual_seed(seed);
        using var model = new MoeForCausalLM(options);
        string cache = Path.Combine(Path.GetTempPath(), $"yinghub-quality-{Environment.ProcessId}.tokens");
        using var corpus = TokenCorpus.Open(data, tokenizer, cache);
        var (train, validation) = BlockSampler.Split(corpus, block, seed);
        using var trainer = new Trainer(model, train, validation, trainerOptions);
        var rss = new SortedDictionary<long, long>(); // step -> resident MB, at every log point
        trainer.Progress += p =>
        {
            if (p.Step % trainerOptions.LogInterval == 0)
            {
                using var self = Process.GetCurrentProcess();
                rss[p.Step] = self.WorkingSet64 / 1_000_000;
            }

            if (p.ValidationLoss is { } v)
                Console.Error.WriteLine(FormattableString.Invariant($"step {p.Step}: train {p.TrainLoss:F3} val {v:F3}"));
        };
        var clock = Stopwatch.StartNew();
        var result = trainer.Run();
        double minutes = clock.Elapsed.TotalMinutes;
        var val = LossEvaluator.Evaluate(model, validation, evalBatches, batch);
        var fit = LossEvaluator.Evaluate(model, train, evalBatches, batch);
        corpus.Dispose();
        File.Delete(cache);
        Console.WriteLine(JsonSerializer.Serialize(new
        {
            library = "YingHub.Moe", preset, steps, batch, block, lr, min_lr = trainerOptions.MinLearningRate, warmup = trainerOptions.WarmupSteps,
            wd = trainerOptions.WeightDecay, beta2 = trainerOptions.Beta2, clip = trainerOptions.GradientClip, dropout = options.Dropout,
            attention_dropout = options.AttentionDropout, init = options.Init.ToString(), residual_init = WeightInit.Residual(options).ToString(), aux = options.LoadBalancingCoef, zloss = options.ZLossCoef, seed, adamw = trainerOptions.FusedAdamW ? "fused" : "per-parameter",
            val_loss = Math.Round(val.Loss, 4), train_eval_loss = Math.Round(fit.Loss, 4), eval_batches = evalBatches, eval_tokens = val.Tokens,
            minutes = Math.Round(minutes, 1), threads = torch.get_num_threads(), tokens_per_s = Math.Round(result.TokensPerSecond),
            rss_mb_by_step = rss,
        }));
        return 0;
    }
}
