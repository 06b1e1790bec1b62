using System.CommandLine;
using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Building;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training;
using YingHub.Moe.Training.Checkpointing;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.FineTuning;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Cli;

/// <summary>What a training run needs, merged from the command line, a <c>--config</c> file and the defaults (<see cref="TrainConfig"/>).</summary>
/// <param name="TokenizerKind">char, gpt2, cl100k or o200k; null with <paramref name="InitFrom"/> to keep the checkpoint's.</param>
/// <param name="InitFrom">A checkpoint directory to fine-tune from: its options, weights and tokenizer, with a fresh optimizer and schedule.</param>
/// <param name="SaveEvery">Save a resumable checkpoint every N steps (0: only at the end and when stopped).</param>
/// <param name="SaveEveryMinutes">Also save when this many minutes have passed since the last save (0: no time interval).</param>
/// <param name="Freeze">Parameters to freeze (parts or name globs); null: none, or on --resume the run's.</param>
internal sealed record TrainSettings(
    string Data, string Preset, string? TokenizerKind, int Steps, int Batch, int? Block, double LearningRate, long Seed, string Output, bool Resume = false,
    TrainingPrecision Precision = TrainingPrecision.Fp32, string? InitFrom = null, TrackingSettings? Tracking = null, InitScheme? Init = null,
    double? Dropout = null, ResidualInitScheme? ResidualInit = null, int SaveEvery = TrainConfig.DefaultSaveEvery,
    double SaveEveryMinutes = TrainConfig.DefaultSaveEveryMinutes, IReadOnlyList<string>? Freeze = null);

/// <summary>Where the metrics go besides the console: JSON Lines and PNG plots beside the checkpoint, TensorBoard, MLflow.</summary>
/// <param name="TensorBoard">Write TensorBoard event files.</param>
/// <param name="MlflowUri">An MLflow tracking server, or null.</param>
/// <param name="PlotInterval">Redraw the PNG plots every N metric points (0: no plots).</param>
internal sealed record TrackingSettings(bool TensorBoard = false, string? MlflowUri = null, int PlotInterval = 10);

/// <summary><c>yinghub train</c>: trains a preset (or fine-tunes a checkpoint) on a text file and saves a checkpoint with its tokenizer.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Option<string?>("--config") { Description = $"A JSON file of settings with the keys {string.Join(", ", TrainConfig.Keys)}; flags given here override it." };
        var data = new Option<string?>("--data") { Description = "Corpus: a text file, or 'tinyshakespeare' ($YINGHUB_DATA_DIR, ../shared/data, the user cache, else downloaded). Default: tinyshakespeare." };
        var preset = new Option<string?>("--preset") { Description = $"Model preset: {string.Join(", ", MoePresets.Names)}. Default: {TrainConfig.DefaultPreset}." };
        preset.AcceptOnlyFromAmong([.. MoePresets.Names]);
        var tokenizer = new Option<string?>("--tokenizer") { Description = "char, gpt2, cl100k or o200k. Default: char (with --init-from: the checkpoint's)." };
        tokenizer.AcceptOnlyFromAmong([.. TrainConfig.Tokenizers]);
        var steps = Cli.OptionalInt("--steps", $"Optimizer steps. Default: {TrainConfig.DefaultSteps}.");
        var batch = Cli.OptionalInt("--batch", $"Sequences per step. Default: {TrainConfig.DefaultBatch}.");
        var block = Cli.OptionalInt("--block", "Tokens per sequence. Default: the preset's (or the checkpoint's) context length.");
        var lr = Cli.OptionalDouble("--lr", $"Peak learning rate (AdamW, warmup then cosine to a tenth). Default: {TrainConfig.DefaultLearningRate}.");
        var seed = Cli.OptionalLong("--seed", $"Seed of weights, batches and dropout. Default: {TrainConfig.DefaultSeed}.");
        var amp = new Option<string?>("--amp") { Description = "Mixed precision: none, bf16 or fp16. Default: none." };
        amp.AcceptOnlyFromAmong([.. TrainConfig.AmpModes]);
        var output = new Option<string?>("--out") { Description = $"Checkpoint directory. Default: {TrainConfig.DefaultOutput}." };
        var initFrom = new Option<string?>("--init-from") { Description = "Fine-tune: start from this checkpoint's weights, options and tokenizer, with a fresh optimizer and schedule." };
        var resume = new Option<bool>("--resume") { Description = "Continue the run saved in --out (same settings): weights, optimizer, step and data position." };
        var json = new Option<bool>("--json") { Description = "No progress bar; end with one JSON object line: steps, train_loss, val_loss, tokens_per_s, params_total, params_active, checkpoint." };
        var tensorBoard = new Option<bool>("--tensorboard") { Description = "Also write TensorBoard event files (in {out}.cache/tensorboard)." };
        var mlflow = new Option<string?>("--mlflow") { Description = "Log the run to this MLflow tracking server (default: $MLFLOW_TRACKING_URI if set), e.g. http://127.0.0.1:5000." };
        var init = new Option<string?>("--init") { Description = "Weight initialisation of a new model: normal (GPT-2, std 0.02 with scaled residual projections), kaiming or xavier. Default: the preset's." };
        init.AcceptOnlyFromAmong("normal", "kaiming", "xavier");
        var residualInit = new Option<string?>("--residual-init")
        {
            Description = "How a new model's projections into the residual stream start: scaled (by 1/sqrt(2 x layers)), zero, or unscaled (as other weights). Default: the preset's; with --init, that scheme's convention.",
        };
        residualInit.AcceptOnlyFromAmong("scaled", "zero", "unscaled");
        var dropout = Cli.OptionalDouble("--dropout", "Dropout probability of a new model, in [0, 1), on embeddings, hidden states, expert outputs and attention weights. Default: the preset's.");
        var saveEvery = Cli.OptionalInt("--save-every", $"Save a resumable checkpoint every N steps (the previous one stays until the new one is complete); 0: off. Default: {TrainConfig.DefaultSaveEvery}.");
        var saveEveryMinutes = Cli.OptionalDouble("--save-every-minutes", $"Also save when this many minutes have passed since the last save, whichever comes first; 0: off. Default: {TrainConfig.DefaultSaveEveryMinutes}.");
        var freeze = new Option<string[]>("--freeze")
        {
            Description = "Freeze parameters (repeatable): embeddings, blocks:N (the first N layers), attention, routers, experts, lm_head, or a glob over parameter names (e.g. 'layers.0.*'). With --resume: the run's, by default.",
            AllowMultipleArgumentsPerToken = false,
        };
        var plots = Cli.OptionalInt("--plots", "Redraw the PNG plots (loss, learning rate, expert-load heatmap in {out}.cache/plots) every N metric points; 0: none. Default: 10.");
        var command = new Command("train", "Train a sparse MoE preset on a text corpus (or fine-tune a checkpoint on one) and save a checkpoint.")
            { config, data, preset, tokenizer, steps, batch, block, lr, seed, amp, output, initFrom, resume, json, tensorBoard, mlflow, plots, init, residualInit, dropout, saveEvery, saveEveryMinutes, freeze };
        command.SetAction(parse => Cli.Run(() =>
        {
            var given = new TrainArguments
            {
                Data = parse.GetValue(data), Preset = parse.GetValue(preset), Tokenizer = parse.GetValue(tokenizer), Steps = parse.GetValue(steps),
                Batch = parse.GetValue(batch), Block = parse.GetValue(block), LearningRate = parse.GetValue(lr), Seed = parse.GetValue(seed),
                Output = parse.GetValue(output), Amp = parse.GetValue(amp), InitFrom = parse.GetValue(initFrom), Dropout = parse.GetValue(dropout),
                SaveEvery = parse.GetValue(saveEvery), SaveEveryMinutes = parse.GetValue(saveEveryMinutes), Freeze = parse.GetValue(freeze) is { Length: > 0 } f ? f : null,
            };
            var file = parse.GetValue(config) is { } path ? TrainConfig.Read(path) : null;
            int plotInterval = parse.GetValue(plots) ?? 10;
            if (plotInterval < 0) throw new CliException($"--plots {plotInterval}: give 0 (no plots) or a positive interval.", 2);
            var settings = TrainConfig.Merge(given, file, parse.GetValue(resume)) with
            {
                Tracking = new TrackingSettings(parse.GetValue(tensorBoard), parse.GetValue(mlflow) ?? NonEmpty(Environment.GetEnvironmentVariable("MLFLOW_TRACKING_URI")), plotInterval),
                Init = parse.GetValue(init) switch { "normal" => InitScheme.Normal, "kaiming" => InitScheme.KaimingNormal, "xavier" => InitScheme.Xavier, _ => null },
                ResidualInit = parse.GetValue(residualInit) switch { "scaled" => ResidualInitScheme.Scaled, "zero" => ResidualInitScheme.Zero, "unscaled" => ResidualInitScheme.Unscaled, _ => null },
            };
            if ((settings.Init is not null || settings.ResidualInit is not null) && (settings.InitFrom is not null || settings.Resume))
                throw new CliException($"{(settings.Init is not null ? "--init" : "--residual-init")} sets up a new model's weights; with --init-from or --resume the weights come from the checkpoint.", 2);
            bool asJson = parse.GetValue(json);
            using var stop = new StopSignals();
            var (model, _, result) = Train(settings, TrainingProgressView.UseBar(asJson), stop.Token);
            using (model)
            {
                if (asJson)
                {
                    Console.WriteLine(JsonSerializer.Serialize(new
                    {
                        steps = result.Steps, train_loss = Finite(result.TrainLoss), val_loss = Finite(result.ValidationLoss), tokens_per_s = Math.Round(result.TokensPerSecond, 1),
                        params_total = model.ParameterCount, params_active = model.ActiveParameterCount, checkpoint = Path.GetFullPath(settings.Output),
                    }));
                }
            }

            if (stop.Received is not { } signal) return 0;
            Console.Error.WriteLine(result.Steps > 0
                ? $"{signal}: stopped at step {result.Steps}; checkpoint saved to {Path.GetFullPath(settings.Output)} (continue with --resume)."
                : $"{signal}: stopped before training; nothing to save.");
            return StopSignals.ExitCode(signal);
        }));
        return command;
    }

    private static double? Finite(double? value) => value is { } v && double.IsFinite(v) ? v : null;

    /// <summary>
    /// Trains as <paramref name="s"/> says, printing progress (a bar with <paramref name="progressBar"/>), and saves the
    /// checkpoint (periodically, at the end, and when <paramref name="stop"/> is cancelled). The caller owns the model.
    /// </summary>
    public static (MoeForCausalLM Model, ITextTokenizer Tokenizer, TrainingResult Result) Train(TrainSettings s, bool progressBar = false, CancellationToken stop = default)
    {
        string path = DataFiles.Corpus(s.Data);
        Cli.RequireTorch();
        var (model, tokenizer, vocab) = s.InitFrom is { } init ? FromCheckpoint(init, s.TokenizerKind, path) : FromPreset(s, path);
        try
        {
            string origin = s.InitFrom is null ? s.Preset : $"fine-tuning {Path.GetFullPath(s.InitFrom)}";
            Console.WriteLine($"corpus {path}, {tokenizer.Name} tokens ({tokenizer.VocabSize:N0}); {origin}: {model.ParameterCount:N0} parameters, {model.ActiveParameterCount:N0} active per token");
            int blockSize = s.InitFrom is not null && s.Block is { } t ? t : model.Options.ContextLength;
            if (blockSize > model.Options.ContextLength)
                throw new CliException($"--block {blockSize} exceeds the checkpoint's context length {model.Options.ContextLength}.", 2);
            // the token cache and the metrics go beside the checkpoint (which is replaced whole at every save), not beside the corpus
            using var corpus = TokenCorpus.Open(path, tokenizer, Path.Combine(s.Output + ".cache", $"{Path.GetFileName(path)}.{tokenizer.Name}.tokens"));
            BlockSampler train, validation;
            try
            {
                (train, validation) = BlockSampler.Split(corpus, blockSize, (int)s.Seed);
            }
            catch (ArgumentException ex)
            {
                throw new CliException($"Corpus '{path}' is too short for blocks of {blockSize} tokens: {Cli.MessageOf(ex)}");
            }

            int interval = Math.Min(100, s.Steps);
            IReadOnlyList<string>? freeze = s.Freeze;
            string? checkpoint = null;
            if (s.Resume)
            {
                checkpoint = NewestCheckpoint(s.Output);
                var saved = TokenizerFiles.Load(checkpoint);
                if (TokenizerCompatibility.Difference(saved, tokenizer) is { } difference)
                    throw new CliException($"--resume: the run in '{s.Output}' does not match this tokenizer: {difference}.");
                freeze ??= CheckpointStore.ReadState(checkpoint).Frozen; // the run's frozen parameters, by exact name
            }

            using var trainer = new Trainer(model, train, validation, new TrainerOptions
            {
                Steps = s.Steps, BatchSize = s.Batch, LearningRate = s.LearningRate, MinLearningRate = s.LearningRate / 10,
                WarmupSteps = Math.Max(1, s.Steps / 20), EvalInterval = interval, EvalBatches = 8, Seed = s.Seed,
                LogInterval = progressBar ? Math.Clamp(s.Steps / 100, 1, 10) : Math.Min(10, s.Steps), // the bar moves at log points; plain lines show the last one's ms/step and MFU
                CheckpointDirectory = s.Output, Precision = s.Precision, Freeze = [.. freeze ?? []],
                CheckpointInterval = s.SaveEvery > 0 ? Math.Min(s.SaveEvery, s.Steps) : null,
                CheckpointIntervalMinutes = s.SaveEveryMinutes > 0 ? s.SaveEveryMinutes : null,
            });
            trainer.CheckpointExtras = staging => TokenizerFiles.Save(tokenizer, staging, vocab);
            if (checkpoint is not null)
            {
                trainer.Resume(s.Output); // refuses a model built with other options than the run's (e.g. a missing --dropout), naming each
                Console.WriteLine($"resumed at step {trainer.Step} from {checkpoint}");
                if (trainer.IsComplete)
                {
                    var done = trainer.Run(); // returns at once with the run's last evaluation
                    Console.WriteLine($"the run in {s.Output} is already complete at step {trainer.Step} of {s.Steps}: nothing to train.");
                    return (model, tokenizer, done);
                }
            }

            using var tracker = CreateTracker(s);
            trainer.Tracker = tracker;
            var result = TrainingProgressView.Run(progressBar, trainer.Step, s.Steps, report =>
            {
                trainer.Progress += report;
                return trainer.Run(stop);
            });
            Console.WriteLine($"saved {s.Output} ({result.Steps} steps, {result.TokensPerSecond:N0} tokens/s); metrics and plots in {Path.GetFullPath(RunDirectory(s))}");
            return (model, tokenizer, result);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The newest complete checkpoint of the run in <paramref name="output"/> (a save a kill interrupted leaves the previous one).</summary>
    private static string NewestCheckpoint(string output)
    {
        try
        {
            return CheckpointStore.FindNewestComplete(output);
        }
        catch (InvalidDataException ex)
        {
            throw new CliException($"--resume: there is no complete run in '{output}' to continue: {ex.Message}");
        }
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    /// <summary>Metrics, plots and event files go beside the checkpoint (which is replaced whole at every save), with the token cache.</summary>
    private static string RunDirectory(TrainSettings s) => s.Output + ".cache";

    private static CompositeTracker CreateTracker(TrainSettings s)
    {
        var t = s.Tracking ?? new TrackingSettings();
        try
        {
            return TrainingTrackers.Create(new TrackingOptions
            {
                RunDirectory = RunDirectory(s), Jsonl = true, TensorBoard = t.TensorBoard, MlflowTrackingUri = t.MlflowUri,
                RunName = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(s.Output))), PlotInterval = t.PlotInterval,
            });
        }
        catch (InvalidOperationException ex)
        {
            throw new CliException($"Tracking: {ex.Message}");
        }
    }

    private static (MoeForCausalLM, ITextTokenizer, string? Gpt2Vocab) FromPreset(TrainSettings s, string corpusPath)
    {
        string kind = s.TokenizerKind ?? TrainConfig.DefaultTokenizer;
        string? vocab = kind == "gpt2" ? DataFiles.Locate(null, Path.Combine("gpt2", "vocab.json")) : null;
        ITextTokenizer tokenizer = kind switch
        {
            "gpt2" => TiktokenTextTokenizer.Gpt2(vocab!),
            "cl100k" => TiktokenTextTokenizer.Cl100k(),
            "o200k" => TiktokenTextTokenizer.O200k(),
            _ => CharTokenizer.FromCorpus(File.ReadAllText(corpusPath)),
        };

        torch.manual_seed(s.Seed);
        var builder = MoeModelBuilder.FromPreset(s.Preset).Vocabulary(tokenizer.VocabSize);
        if (s.Block is { } t) builder.Context(t);
        if (s.Init is { } scheme) builder.Init(scheme, residual: s.ResidualInit); // a scheme comes with its own residual convention unless told otherwise
        else if (s.ResidualInit is { } start) builder.ResidualInit(start);
        if (s.Dropout is { } p) builder.Dropout(p);
        return (builder.Build(), tokenizer, vocab);
    }

    private static (MoeForCausalLM, ITextTokenizer, string? Gpt2Vocab) FromCheckpoint(string directory, string? tokenizerKind, string corpusPath)
    {
        FineTuneStart start;
        try
        {
            start = FineTuneStart.Load(directory, tokenizerKind);
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            throw new CliException($"--init-from: {Cli.MessageOf(ex)}");
        }

        try
        {
            start.EnsureEncodable(File.ReadAllText(corpusPath), $"Corpus '{corpusPath}'");
        }
        catch (ArgumentException ex)
        {
            start.Model.Dispose();
            throw new CliException($"--init-from: {Cli.MessageOf(ex)}");
        }

        string? vocab = start.Tokenizer.Name == "gpt2" ? Path.Combine(start.Directory, "vocab.json") : null;
        return (start.Model, start.Tokenizer, vocab);
    }
}
