using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using YingHub.Moe.Building;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tokenizers;
using YingHub.Moe.Training;
using YingHub.Moe.Training.Checkpointing;
using YingHub.Moe.Training.Data;
using YingHub.Moe.Training.FineTuning;
using YingHub.Moe.Training.Objectives;
using YingHub.Moe.Training.Recipes;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Cli;

/// <summary>What a training run needs: its recipe, merged from the command line, a <c>--config</c> file and the defaults (<see cref="TrainConfig"/>).</summary>
/// <param name="Recipe">The run's settings; <see cref="TrainingRecipe.Data"/> and the trainer's checkpoint directory are set.</param>
/// <param name="Resume">Continue the run saved in the checkpoint directory.</param>
internal sealed record TrainSettings(TrainingRecipe Recipe, bool Resume = false)
{
    /// <summary>The checkpoint directory.</summary>
    public string Output => Recipe.Trainer.CheckpointDirectory ?? throw new InvalidOperationException("The recipe has no checkpoint directory.");
}

/// <summary>Where the metrics of <c>yinghub rlhf</c> go besides the console: JSON Lines and PNG plots beside the checkpoint, TensorBoard, MLflow.</summary>
/// <param name="TensorBoard">Write TensorBoard event files.</param>
/// <param name="MlflowUri">An MLflow tracking server, or null.</param>
/// <param name="PlotInterval">Redraw the PNG plots every N metric points (0: no plots).</param>
internal sealed record TrackingSettings(bool TensorBoard = false, string? MlflowUri = null, int PlotInterval = 10);

/// <summary><c>yinghub train</c>: trains a preset (or fine-tunes a checkpoint) on a text file and saves a checkpoint with its tokenizer.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Option<string?>("--config")
        {
            Description = $"A JSON file of settings: data, tokenizer, block_size, init_from, and the sections model (a preset plus any config.json keys, or a config.json path), trainer (every trainer option, snake_case) and tracking; see docs/training.md and samples/recipes. Flags given here override it. With --resume: the run's own {TrainConfig.SavedConfigFile} by default.",
        };
        var printConfig = new Option<bool>("--print-config") { Description = $"Print the whole effective configuration as a --config file and exit without training (each checkpoint keeps it as {TrainConfig.SavedConfigFile})." };
        var resume = new Option<bool>("--resume") { Description = "Continue the run saved in --out (same settings): weights, optimizer, step and data position." };
        var json = new Option<bool>("--json") { Description = "No progress bar; end with one JSON object line: steps, train_loss, val_loss, tokens_per_s, params_total, params_active, checkpoint." };
        var command = new Command("train", "Train a sparse MoE preset on a text corpus (or fine-tune a checkpoint on one) and save a checkpoint.") { config, printConfig, resume, json };
        foreach (var flag in TrainConfig.Flags) command.Options.Add(flag.Option);
        command.SetAction(parse => Cli.Run(() =>
        {
            bool asJson = parse.GetValue(json), isResume = parse.GetValue(resume), bar = TrainingProgressView.UseBar(asJson) && !parse.GetValue(printConfig);
            string? path = parse.GetValue(config);
            if (path is null && isResume) path = SavedConfig(parse); // a resumed run keeps its own settings unless told otherwise
            var file = path is null ? null : TrainConfig.ReadFile(path);
            var merged = TrainConfig.Merge(file, parse, bar);
            var recipe = TrainConfig.Recipe(merged, path is null ? "settings" : $"--config '{path}'", path is null ? null : Path.GetDirectoryName(Path.GetFullPath(path)), parse, isResume);
            var settings = new TrainSettings(recipe, isResume);
            if (parse.GetValue(printConfig))
            {
                Console.WriteLine(Resolve(settings).ToJson().ToJsonString(ConfigJson));
                return 0;
            }

            using var stop = new StopSignals();
            var (model, _, result) = Train(settings, bar, stop.Token);
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

    private static readonly JsonSerializerOptions ConfigJson = new() { WriteIndented = true };

    /// <summary>The saved configuration of the run <c>--resume</c> continues, if its newest checkpoint has one.</summary>
    private static string? SavedConfig(ParseResult parse)
    {
        var probe = TrainConfig.Merge(null, parse, progressBar: false);
        if (probe[TrainingRecipe.TrainerKey]?["checkpoint_directory"] is not JsonValue dir || !dir.TryGetValue(out string? output)) return null;
        string? newest = null;
        try
        {
            newest = CheckpointStore.FindNewestComplete(output);
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException)
        {
            return null; // Train says there is no run to continue
        }

        string saved = Path.Combine(newest, TrainConfig.SavedConfigFile);
        return File.Exists(saved) ? saved : null;
    }

    private static double? Finite(double? value) => value is { } v && double.IsFinite(v) ? v : null;

    /// <summary>
    /// Trains as <paramref name="s"/> says, printing progress (a bar with <paramref name="progressBar"/>), and saves the
    /// checkpoint (periodically, at the end, and when <paramref name="stop"/> is cancelled) with the run's whole
    /// configuration. The caller owns the model.
    /// </summary>
    public static (MoeForCausalLM Model, ITextTokenizer Tokenizer, TrainingResult Result) Train(TrainSettings s, bool progressBar = false, CancellationToken stop = default)
    {
        var recipe = s.Recipe;
        string path = DataFiles.Corpus(recipe.Data ?? TrainConfig.DefaultData);
        Cli.RequireTorch();
        var (model, tokenizer, vocab) = recipe.InitFrom is { } init ? FromCheckpoint(init, recipe.Tokenizer, path) : FromRecipe(recipe, path);
        try
        {
            string origin = recipe.InitFrom is null ? recipe.Preset ?? "the model section" : $"fine-tuning {Path.GetFullPath(recipe.InitFrom)}";
            Console.WriteLine($"corpus {path}, {tokenizer.Name} tokens ({tokenizer.VocabSize:N0}); {origin}: {model.ParameterCount:N0} parameters, {model.ActiveParameterCount:N0} active per token");
            int blockSize = recipe.BlockSize ?? model.Options.ContextLength;
            if (blockSize > model.Options.ContextLength)
                throw new CliException($"block_size {blockSize} exceeds the model's context length {model.Options.ContextLength}.", 2);
            // the token cache and the metrics go beside the checkpoint (which is replaced whole at every save), not beside the corpus
            using var corpus = TokenCorpus.Open(path, tokenizer, Path.Combine(TrainConfig.RunDirectory(s.Output), $"{Path.GetFileName(path)}.{tokenizer.Name}.tokens"));
            BlockSampler train, validation;
            try
            {
                (train, validation) = BlockSampler.Split(corpus, blockSize, (int)recipe.Trainer.Seed);
            }
            catch (ArgumentException ex)
            {
                throw new CliException($"Corpus '{path}' is too short for blocks of {blockSize} tokens: {Cli.MessageOf(ex)}");
            }

            string? checkpoint = null;
            if (s.Resume)
            {
                checkpoint = NewestCheckpoint(s.Output);
                var saved = TokenizerFiles.Load(checkpoint);
                if (TokenizerCompatibility.Difference(saved, tokenizer) is { } difference)
                    throw new CliException($"--resume: the run in '{s.Output}' does not match this tokenizer: {difference}.");
                if (recipe.Trainer.Freeze.Count == 0) recipe.Trainer.Freeze = [.. CheckpointStore.ReadState(checkpoint).Frozen ?? []]; // the run's frozen parameters, by exact name
            }

            var effective = Resolved(recipe, model, tokenizer, blockSize);
            using var trainer = new Trainer(model, train, validation, recipe.Trainer);
            if (recipe.Objective is { IsPlainCausal: false } mixture)
            {
                try
                {
                    trainer.Objective = new TrainingObjective(mixture, tokenizer, blockSize);
                }
                catch (ArgumentException ex)
                {
                    throw new CliException($"objective: {Cli.MessageOf(ex)}", 2);
                }

                Console.WriteLine($"objective: {string.Join(", ", mixture.Objectives.Where(o => mixture.Schedule.Any(st => st.Weights.GetValueOrDefault(o.Name) > 0)).Select(o => o.Name))} "
                    + $"({mixture.Schedule.Count} stage{(mixture.Schedule.Count == 1 ? "" : "s")}); validation loss is causal LM on plain blocks");
            }

            trainer.CheckpointExtras = staging =>
            {
                TokenizerFiles.Save(tokenizer, staging, vocab);
                File.WriteAllText(Path.Combine(staging, TrainConfig.SavedConfigFile), effective.ToJson().ToJsonString(ConfigJson));
            };
            if (checkpoint is not null)
            {
                trainer.Resume(s.Output); // refuses a model built with other options than the run's (e.g. a missing --dropout), naming each
                Console.WriteLine($"resumed at step {trainer.Step} from {checkpoint}");
                if (trainer.IsComplete)
                {
                    var done = trainer.Run(); // returns at once with the run's last evaluation
                    Console.WriteLine($"the run in {s.Output} is already complete at step {trainer.Step} of {recipe.Trainer.Steps}: nothing to train.");
                    return (model, tokenizer, done);
                }
            }

            using var tracker = CreateTracker(recipe, s.Output);
            trainer.Tracker = tracker;
            var result = TrainingProgressView.Run(progressBar, trainer.Step, recipe.Trainer.Steps, report =>
            {
                trainer.Progress += report;
                return trainer.Run(stop);
            });
            Console.WriteLine($"saved {s.Output} ({result.Steps} steps, {result.TokensPerSecond:N0} tokens/s); metrics and plots in {Path.GetFullPath(TrainConfig.RunDirectory(s.Output))}");
            return (model, tokenizer, result);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The run's whole configuration with the model as built (its vocabulary and context), as <c>--print-config</c> shows it.</summary>
    public static TrainingRecipe Resolve(TrainSettings s)
    {
        var recipe = s.Recipe;
        string path = DataFiles.Corpus(recipe.Data ?? TrainConfig.DefaultData);
        Cli.RequireTorch();
        var (model, tokenizer, _) = recipe.InitFrom is { } init ? FromCheckpoint(init, recipe.Tokenizer, path) : FromRecipe(recipe, path);
        using (model) return Resolved(recipe, model, tokenizer, recipe.BlockSize ?? model.Options.ContextLength);
    }

    private static TrainingRecipe Resolved(TrainingRecipe recipe, MoeForCausalLM model, ITextTokenizer tokenizer, int blockSize) => new()
    {
        Data = recipe.Data, Tokenizer = recipe.InitFrom is null ? tokenizer.Name : recipe.Tokenizer, BlockSize = blockSize, InitFrom = recipe.InitFrom, Objective = recipe.Objective,
        Preset = recipe.InitFrom is null ? recipe.Preset : null, Model = recipe.InitFrom is null ? model.Options.Clone() : null,
        Trainer = recipe.Trainer, Tracking = recipe.Tracking,
    };

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

    private static CompositeTracker CreateTracker(TrainingRecipe recipe, string output)
    {
        try
        {
            return TrainingTrackers.Create(recipe.Tracking ?? new TrackingOptions { RunDirectory = TrainConfig.RunDirectory(output), PlotInterval = TrainConfig.DefaultPlotInterval });
        }
        catch (InvalidOperationException ex)
        {
            throw new CliException($"Tracking: {ex.Message}");
        }
    }

    private static (MoeForCausalLM, ITextTokenizer, string? Gpt2Vocab) FromRecipe(TrainingRecipe recipe, string corpusPath)
    {
        string kind = recipe.Tokenizer ?? TrainConfig.DefaultTokenizer;
        string? vocab = kind == "gpt2" ? DataFiles.Locate(null, Path.Combine("gpt2", "vocab.json")) : null;
        ITextTokenizer tokenizer = kind switch
        {
            "gpt2" => TiktokenTextTokenizer.Gpt2(vocab!),
            "cl100k" => TiktokenTextTokenizer.Cl100k(),
            "o200k" => TiktokenTextTokenizer.O200k(),
            _ => CharTokenizer.FromCorpus(File.ReadAllText(corpusPath)),
        };

        var options = (recipe.Model ?? MoePresets.Get(TrainConfig.DefaultPreset)).Clone();
        if (recipe.Objective is { IsPlainCausal: false } objective)
        {
            // UL2's sentinel and mode tokens join the vocabulary after the text's tokens
            int trainBlock = recipe.BlockSize ?? options.ContextLength; // the block Train will draw
            try
            {
                tokenizer = new SpecialTokensTokenizer(tokenizer, TrainingObjective.SpecialTokens(objective, trainBlock));
            }
            catch (ArgumentException ex)
            {
                throw new CliException($"objective: {Cli.MessageOf(ex)}", 2);
            }
        }

        // what the recipe left open follows the tokenizer and the block size; what it set must fit them
        if (!recipe.GivenModelKeys.Contains("vocab_size")) options.VocabSize = tokenizer.VocabSize;
        else if (options.VocabSize != tokenizer.VocabSize)
            throw new CliException($"model.vocab_size {options.VocabSize} does not match the {tokenizer.Name} tokenizer's {tokenizer.VocabSize:N0} tokens on this corpus; leave it out to take the tokenizer's.", 2);
        if (recipe.BlockSize is { } block && !recipe.GivenModelKeys.Contains("max_position_embeddings")) options.ContextLength = block;
        torch.manual_seed(recipe.Trainer.Seed);
        try
        {
            return (MoeModelBuilder.From(options).Build(), tokenizer, vocab);
        }
        catch (ArgumentException ex)
        {
            throw new CliException($"model: {Cli.MessageOf(ex)}", 2);
        }
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
