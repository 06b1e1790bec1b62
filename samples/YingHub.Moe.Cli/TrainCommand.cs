using System.CommandLine;
using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Building;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Cli;

/// <summary>What a training run needs from the command line.</summary>
internal sealed record TrainSettings(
    string Data, string Preset, string TokenizerKind, int Steps, int Batch, int? Block, double LearningRate, long Seed, string Output, bool Resume = false);

/// <summary><c>yinghub train</c>: trains a preset on a text file and saves a checkpoint with its tokenizer.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { Description = "Corpus: a text file, or 'tinyshakespeare' ($YINGHUB_DATA_DIR or ../shared/data).", DefaultValueFactory = _ => "tinyshakespeare" };
        var preset = new Option<string>("--preset") { Description = "Model preset: tiny, makemoe or yinghub-v2.", DefaultValueFactory = _ => "tiny" };
        preset.AcceptOnlyFromAmong([.. MoePresets.Names]);
        var tokenizer = new Option<string>("--tokenizer") { Description = "char, gpt2, cl100k or o200k.", DefaultValueFactory = _ => "char" };
        tokenizer.AcceptOnlyFromAmong("char", "gpt2", "cl100k", "o200k");
        var steps = new Option<int>("--steps") { Description = "Optimizer steps.", DefaultValueFactory = _ => 1000 };
        var batch = new Option<int>("--batch") { Description = "Sequences per step.", DefaultValueFactory = _ => 32 };
        var block = new Option<int?>("--block") { Description = "Tokens per sequence (default: the preset's context length)." };
        var lr = new Option<double>("--lr") { Description = "Peak learning rate (AdamW, warmup then cosine to a tenth).", DefaultValueFactory = _ => 2e-3 };
        var seed = new Option<long>("--seed") { Description = "Seed of weights, batches and dropout.", DefaultValueFactory = _ => 1337 };
        var output = new Option<string>("--out") { Description = "Checkpoint directory.", DefaultValueFactory = _ => Path.Combine("runs", "train") };
        var resume = new Option<bool>("--resume") { Description = "Continue the run saved in --out (same settings): weights, optimizer, step and data position." };
        var json = new Option<bool>("--json") { Description = "End with one JSON object line: steps, train_loss, val_loss, tokens_per_s, params_total, params_active, checkpoint." };
        var command = new Command("train", "Train a sparse MoE preset on a text corpus and save a checkpoint.") { data, preset, tokenizer, steps, batch, block, lr, seed, output, resume, json };
        command.SetAction(parse => Cli.Run(() =>
        {
            var settings = new TrainSettings(parse.GetValue(data)!, parse.GetValue(preset)!, parse.GetValue(tokenizer)!, parse.GetValue(steps),
                parse.GetValue(batch), parse.GetValue(block), parse.GetValue(lr), parse.GetValue(seed), parse.GetValue(output)!, parse.GetValue(resume));
            var (model, _, result) = Train(settings);
            using (model)
            {
                if (parse.GetValue(json))
                {
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        steps = result.Steps, train_loss = result.TrainLoss, val_loss = result.ValidationLoss, tokens_per_s = Math.Round(result.TokensPerSecond, 1),
                        params_total = model.ParameterCount, params_active = model.ActiveParameterCount, checkpoint = Path.GetFullPath(settings.Output),
                    }));
                }
            }

            return 0;
        }));
        return command;
    }

    /// <summary>Trains as <paramref name="s"/> says, printing progress, and saves the checkpoint. The caller owns the model.</summary>
    public static (MoeForCausalLM Model, ITextTokenizer Tokenizer, TrainingResult Result) Train(TrainSettings s)
    {
        string path = DataFiles.Locate(s.Data == "tinyshakespeare" ? null : s.Data, "tinyshakespeare.txt");
        Cli.RequireTorch();
        ITextTokenizer tokenizer = s.TokenizerKind switch
        {
            "gpt2" => TiktokenTextTokenizer.Gpt2(DataFiles.Locate(null, Path.Combine("gpt2", "vocab.json"))),
            "cl100k" => TiktokenTextTokenizer.Cl100k(),
            "o200k" => TiktokenTextTokenizer.O200k(),
            _ => CharTokenizer.FromCorpus(File.ReadAllText(path)),
        };

        torch.manual_seed(s.Seed);
        var builder = MoeModelBuilder.FromPreset(s.Preset).Vocabulary(tokenizer.VocabSize);
        if (s.Block is { } t) builder.Context(t);
        var model = builder.Build();
        try
        {
            Console.WriteLine($"corpus {path}, {tokenizer.Name} tokens ({tokenizer.VocabSize:N0}); {s.Preset}: {model.ParameterCount:N0} parameters, {model.ActiveParameterCount:N0} active per token");
            // the token cache and the metrics go beside the checkpoint (which is replaced whole at every save), not beside the corpus
            using var corpus = TokenCorpus.Open(path, tokenizer, Path.Combine(s.Output + ".cache", $"{Path.GetFileName(path)}.{tokenizer.Name}.tokens"));
            var (train, validation) = BlockSampler.Split(corpus, model.Options.ContextLength, (int)s.Seed);
            int interval = Math.Min(100, s.Steps);
            using var trainer = new Trainer(model, train, validation, new TrainerOptions
            {
                Steps = s.Steps, BatchSize = s.Batch, LearningRate = s.LearningRate, MinLearningRate = s.LearningRate / 10,
                WarmupSteps = Math.Max(1, s.Steps / 20), EvalInterval = interval, EvalBatches = 8, LogInterval = interval, Seed = s.Seed,
                CheckpointDirectory = s.Output, CheckpointInterval = Math.Min(500, s.Steps),
            });
            string? vocab = tokenizer.Name == "gpt2" ? DataFiles.Locate(null, Path.Combine("gpt2", "vocab.json")) : null;
            trainer.CheckpointExtras = staging => TokenizerFiles.Save(tokenizer, staging, vocab);
            if (s.Resume)
            {
                if (!Directory.Exists(s.Output)) throw new CliException($"--resume: there is no run in '{s.Output}' to continue.");
                var saved = TokenizerFiles.Load(s.Output);
                if (saved.Name != tokenizer.Name || saved.VocabSize != tokenizer.VocabSize || (saved is CharTokenizer a && tokenizer is CharTokenizer b && a.Vocabulary != b.Vocabulary))
                    throw new CliException($"--resume: the run in '{s.Output}' used a {saved.Name} tokenizer ({saved.VocabSize} tokens); this one is {tokenizer.Name} ({tokenizer.VocabSize}).");
                trainer.Resume(s.Output);
                Console.WriteLine($"resumed at step {trainer.Step}");
            }

            using var metrics = new JsonlMetricsWriter(Path.Combine(s.Output + ".cache", "metrics.jsonl"));
            trainer.Progress += metrics.Write;
            trainer.Progress += p =>
            {
                if (p.ValidationLoss is { } val)
                    Console.WriteLine($"step {p.Step,6}/{s.Steps}: train loss {p.TrainLoss:F3}, val loss {val:F3}, lr {p.LearningRate:G3}, {p.TokensPerSecond:N0} tokens/s");
            };
            var result = trainer.Run();
            Console.WriteLine($"saved {s.Output} ({result.Steps} steps, {result.TokensPerSecond:N0} tokens/s); metrics in {metrics.Path}");
            return (model, tokenizer, result);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}
