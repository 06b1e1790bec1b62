using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Training.Recipes;

namespace YingHub.Moe.Cli;

/// <summary>
/// A flag of <c>yinghub train</c> that is a setting: where its value goes in a config file (<see cref="TrainingRecipe"/>
/// JSON), so a flag and its key are one row of <see cref="TrainConfig.Flags"/> and merging is writing the given flags
/// over the file.
/// </summary>
/// <param name="Option">The flag.</param>
/// <param name="Keys">The config keys it sets, e.g. <c>trainer.steps</c>.</param>
/// <param name="Read">The (key, value) pairs the flag writes, or null when it was not given.</param>
internal sealed record SettingFlag(Option Option, IReadOnlyList<string> Keys, Func<ParseResult, IReadOnlyList<(string Key, JsonNode? Value)>?> Read)
{
    /// <summary>Writes the flag's value over <paramref name="root"/>; false when the flag was not given.</summary>
    public bool Apply(ParseResult parse, JsonObject root)
    {
        if (Read(parse) is not { } values) return false;
        foreach (var (key, value) in values) TrainConfig.Set(root, key, value);
        return true;
    }
}

/// <summary>
/// The settings of <c>yinghub train</c>: the flag table, the defaults, and the merge (flags over a <c>--config</c> file
/// over the defaults) into a <see cref="TrainingRecipe"/>. Pure: no torch, no file system but the config file.
/// </summary>
internal static class TrainConfig
{
    public const string DefaultData = "tinyshakespeare";
    public const string DefaultPreset = "tiny";
    public const string DefaultTokenizer = "char";
    public const int DefaultSteps = 1000;
    public const int DefaultBatch = 32;
    public const double DefaultLearningRate = 2e-3;
    public const long DefaultSeed = 1337;
    public const int DefaultSaveEvery = 500;
    public const double DefaultSaveEveryMinutes = 10;
    public const int DefaultEvalInterval = 100;
    public const int DefaultEvalBatches = 8;
    public const int DefaultPlotInterval = 10;

    /// <summary>The file, beside a checkpoint's weights, that holds the run's whole configuration as a <c>--config</c> file.</summary>
    public const string SavedConfigFile = "training_config.json";

    public static readonly string DefaultOutput = Path.Combine("runs", "train");
    public static readonly IReadOnlyList<string> Tokenizers = ["char", "gpt2", "cl100k", "o200k"];
    public static readonly IReadOnlyList<string> AmpModes = ["none", "bf16", "fp16"];

    /// <summary>The flags that are settings, each with the config keys it writes, in the order they apply.</summary>
    public static IReadOnlyList<SettingFlag> Flags { get; } =
    [
        Text("--data", "data", $"Corpus: a text file, or 'tinyshakespeare' ($YINGHUB_DATA_DIR, ../shared/data, the user cache, else downloaded). Default: {DefaultData}."),
        Choice("--tokenizer", "tokenizer", $"{string.Join(", ", Tokenizers)}. Default: {DefaultTokenizer} (with --init-from: the checkpoint's).", Tokenizers),
        Text("--init-from", "init_from", "Fine-tune: start from this checkpoint's weights, options and tokenizer, with a fresh optimizer and schedule."),
        Int("--block", "block_size", "Tokens per sequence; for a new model also its context length unless model.max_position_embeddings is set. Default: the model's context length."),
        Text("--objective", ["objective"],
            "What to train on: causal (next-token prediction), ul2 (UL2's mixture of denoisers: span corruption R and X, prefix LM S, with sentinel and mode tokens added to the tokenizer), a mixture as a JSON object, or the path of a JSON file with one (docs/training.md). Default: causal.",
            v => [ObjectiveValue(v)]),
        Choice("--preset", "model.preset", $"Model preset: {string.Join(", ", MoePresets.Names)}. Default: {DefaultPreset}.", MoePresets.Names),
        Number("--dropout", ["model.hidden_dropout", "model.attention_dropout", "model.embedding_dropout"],
            "Dropout probability of a new model, in [0, 1), on embeddings, hidden states, expert outputs and attention weights. Default: the preset's.",
            p => [JsonValue.Create(p), JsonValue.Create(p), null]),
        Choice("--init", ["model.init_scheme", "model.residual_init"],
            "Weight initialisation of a new model: normal (GPT-2, std 0.02 with scaled residual projections), kaiming or xavier, with that scheme's residual convention. Default: the preset's.",
            ["normal", "kaiming", "xavier"], v => [JsonValue.Create(v switch { "kaiming" => nameof(InitScheme.KaimingNormal), "xavier" => nameof(InitScheme.Xavier), _ => nameof(InitScheme.Normal) }), null]),
        Choice("--residual-init", ["model.residual_init"],
            "How a new model's projections into the residual stream start: scaled (by 1/sqrt(2 x layers)), zero, or unscaled (as other weights). Default: the preset's; with --init, that scheme's convention.",
            ["scaled", "zero", "unscaled"], v => [JsonValue.Create(v switch { "zero" => nameof(ResidualInitScheme.Zero), "unscaled" => nameof(ResidualInitScheme.Unscaled), _ => nameof(ResidualInitScheme.Scaled) })]),
        Int("--steps", "trainer.steps", $"Optimizer steps. Default: {DefaultSteps}."),
        Int("--batch", "trainer.batch_size", $"Sequences per micro-batch. Default: {DefaultBatch}."),
        Int("--accumulate", "trainer.gradient_accumulation", "Micro-batches per optimizer step (gradient accumulation). Default: 1."),
        Int("--warmup", "trainer.warmup_steps", "Linear warmup steps before the schedule. Default: a twentieth of the steps."),
        Number("--lr", ["trainer.learning_rate"], $"Peak learning rate (AdamW; warmup then the schedule, by default cosine to a tenth). Default: {DefaultLearningRate}.", v => [JsonValue.Create(v)]),
        Long("--seed", "trainer.seed", $"Seed of weights, batches and dropout. Default: {DefaultSeed}."),
        Choice("--amp", ["trainer.precision"], "Mixed precision: none, bf16 or fp16. Default: none.", AmpModes, v => [JsonValue.Create(v == "none" ? "fp32" : v)]),
        Text("--out", ["trainer.checkpoint_directory", "tracking.run_directory", "tracking.run_name"], $"Checkpoint directory; metrics and plots go beside it in {{out}}.cache. Default: {DefaultOutput}.",
            v => [JsonValue.Create(v), JsonValue.Create(RunDirectory(v)), JsonValue.Create(RunName(v))]),
        IntOrOff("--save-every", "trainer.checkpoint_interval", $"Save a resumable checkpoint every N steps (the previous one stays until the new one is complete); 0: off. Default: {DefaultSaveEvery}."),
        Number("--save-every-minutes", ["trainer.checkpoint_interval_minutes"], $"Also save when this many minutes have passed since the last save, whichever comes first; 0: off. Default: {DefaultSaveEveryMinutes}.",
            v => [v == 0 ? null : JsonValue.Create(v)]),
        Texts("--freeze", "trainer.freeze", "Freeze parameters (repeatable): embeddings, blocks:N (the first N layers), attention, routers, experts, lm_head, or a glob over parameter names (e.g. 'layers.0.*'). With --resume: the run's, by default."),
        Switch("--tensorboard", "tracking.tensor_board", "Also write TensorBoard event files (in {out}.cache/tensorboard)."),
        Text("--mlflow", "tracking.mlflow_tracking_uri", "Log the run to this MLflow tracking server (default: $MLFLOW_TRACKING_URI if set), e.g. http://127.0.0.1:5000."),
        Int("--plots", "tracking.plot_interval", $"Redraw the PNG plots (loss, learning rate, expert-load heatmap in {{out}}.cache/plots) every N metric points; 0: none. Default: {DefaultPlotInterval}."),
    ];

    /// <summary>
    /// The configuration of a run: <paramref name="file"/> (a <c>--config</c> file's JSON, or null) with the given flags
    /// written over it and the defaults filled in where neither says anything. The result is a complete recipe JSON.
    /// </summary>
    /// <param name="progressBar">Whether progress shows as a bar (its default log interval is finer).</param>
    public static JsonObject Merge(JsonObject? file, ParseResult? parse, bool progressBar)
    {
        var root = file?.DeepClone().AsObject() ?? new JsonObject();
        if (parse is not null)
        {
            foreach (var flag in Flags) flag.Apply(parse, root);
        }

        ApplyDefaults(root, progressBar);
        return root;
    }

    /// <summary>The flag that wrote <paramref name="key"/> (a key path such as <c>trainer.steps</c>) on this command line, or null.</summary>
    public static string? FlagOf(string key, ParseResult? parse) =>
        parse is null ? null : Flags.FirstOrDefault(f => f.Keys.Contains(key) && f.Read(parse) is not null)?.Option.Name;

    /// <summary>Fills what the file and flags left open with the CLI's defaults (some follow from other settings).</summary>
    public static void ApplyDefaults(JsonObject root, bool progressBar)
    {
        root.TryAdd("data", DefaultData);
        bool fineTune = root["init_from"] is not null;
        if (!fineTune)
        {
            root.TryAdd("tokenizer", DefaultTokenizer);
            if (root[TrainingRecipe.ModelKey] is null) root[TrainingRecipe.ModelKey] = new JsonObject();
            if (root[TrainingRecipe.ModelKey] is JsonObject model && !model.ContainsKey(TrainingRecipe.PresetKey))
                model.Insert(0, TrainingRecipe.PresetKey, DefaultPreset);
        }

        if (root[TrainingRecipe.TrainerKey] is null) root[TrainingRecipe.TrainerKey] = new JsonObject();
        if (root[TrainingRecipe.TrainerKey] is JsonObject trainer)
        {
            trainer.TryAdd("steps", DefaultSteps);
            trainer.TryAdd("batch_size", DefaultBatch);
            trainer.TryAdd("learning_rate", DefaultLearningRate);
            trainer.TryAdd("seed", DefaultSeed);
            trainer.TryAdd("checkpoint_directory", DefaultOutput);
            trainer.TryAdd("checkpoint_interval_minutes", DefaultSaveEveryMinutes);
            trainer.TryAdd("eval_batches", DefaultEvalBatches);
            // the rest follow the run's length and peak rate; a value of the wrong type is left for the recipe's reader to name
            if (Number(trainer["steps"]) is { } steps && steps >= 1)
            {
                long n = (long)steps;
                trainer.TryAdd("warmup_steps", Math.Max(1, n / 20));
                trainer.TryAdd("eval_interval", Math.Min(DefaultEvalInterval, n));
                trainer.TryAdd("log_interval", progressBar ? Math.Clamp(n / 100, 1, 10) : Math.Min(10, n)); // the bar moves at log points; plain lines show the last one's ms/step and MFU
                trainer.TryAdd("checkpoint_interval", Math.Min(DefaultSaveEvery, n));
            }

            if (Number(trainer["learning_rate"]) is { } lr) trainer.TryAdd("min_learning_rate", lr / 10);
        }

        if (root[TrainingRecipe.TrackingKey] is null) root[TrainingRecipe.TrackingKey] = new JsonObject();
        if (root[TrainingRecipe.TrackingKey] is JsonObject tracking && root[TrainingRecipe.TrainerKey]?["checkpoint_directory"] is JsonValue dir
            && dir.TryGetValue(out string? output) && !string.IsNullOrWhiteSpace(output))
        {
            // metrics, plots and event files go beside the checkpoint (which is replaced whole at every save), with the token cache
            tracking.TryAdd("run_directory", RunDirectory(output));
            tracking.TryAdd("run_name", RunName(output));
            tracking.TryAdd("plot_interval", DefaultPlotInterval);
            if (NonEmpty(Environment.GetEnvironmentVariable("MLFLOW_TRACKING_URI")) is { } uri) tracking.TryAdd("mlflow_tracking_uri", uri);
        }
    }

    /// <summary>Where a run's metrics, plots and token cache go: beside its checkpoint directory.</summary>
    public static string RunDirectory(string output) => output + ".cache";

    /// <summary>A run's name in trackers: its checkpoint directory's name.</summary>
    private static string RunName(string output) =>
        string.IsNullOrWhiteSpace(output) ? output : Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(output)));

    /// <summary>
    /// The recipe of a merged configuration, checked: every bad setting, each naming its key (and the flag that set it),
    /// and the combinations the CLI cannot run, in one <see cref="CliException"/> (exit code 2).
    /// </summary>
    public static TrainingRecipe Recipe(JsonObject merged, string source, string? baseDirectory, ParseResult? parse = null, bool resume = false)
    {
        TrainingRecipe recipe;
        try
        {
            recipe = TrainingRecipe.FromJson(merged, baseDirectory);
        }
        catch (InvalidDataException ex)
        {
            throw new CliException($"{source}: {ex.Message}", 2);
        }

        var problems = recipe.GetProblems().Select(p => WithFlag(p, parse)).ToList();
        foreach (var (name, value) in new[] { ("data", recipe.Data), ("trainer.checkpoint_directory", recipe.Trainer.CheckpointDirectory), ("init_from", recipe.InitFrom) })
        {
            if (value is not null && string.IsNullOrWhiteSpace(value)) problems.Add($"{name} must not be empty{FlagNote(name, parse)}.");
        }

        if (recipe.Tokenizer is { } t && !Tokenizers.Contains(t)) problems.Add($"tokenizer '{t}' is not one of {string.Join(", ", Tokenizers)}.");
        if (recipe.Trainer.CheckpointDirectory is null) problems.Add("trainer.checkpoint_directory must be set: the CLI always saves its run.");
        if (recipe.InitFrom is not null)
        {
            if (resume) problems.Add("--init-from starts a new run from a checkpoint's weights and --resume continues a run; give one of them.");
            if (merged[TrainingRecipe.ModelKey] is not null)
            {
                string? flag = parse is null ? null : Flags.FirstOrDefault(f => f.Keys.Any(k => k.StartsWith(TrainingRecipe.ModelKey + ".", StringComparison.Ordinal)) && f.Read(parse) is not null)?.Option.Name;
                problems.Add($"{flag ?? "the model section"} sets up a new model; with init_from the model options come from the checkpoint '{recipe.InitFrom}'.");
            }
        }

        if (problems.Count > 0) throw new CliException(string.Join(" ", problems), 2);
        return recipe;
    }

    /// <summary>Reads the JSON of a <c>--config</c> file.</summary>
    /// <exception cref="CliException">The file is missing, unreadable, not JSON or not an object.</exception>
    public static JsonObject ReadFile(string path)
    {
        try
        {
            return TrainingRecipe.ReadJson(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"--config '{path}' cannot be read: {ex.Message}");
        }
        catch (InvalidDataException ex)
        {
            throw new CliException($"--config '{path}': {ex.Message}", 2);
        }
    }

    /// <summary>Sets <paramref name="path"/> (dotted, e.g. <c>trainer.steps</c>) in <paramref name="root"/>, creating the sections on the way.</summary>
    /// <exception cref="CliException">A section on the way is not an object (e.g. the model section is a config.json path).</exception>
    public static void Set(JsonObject root, string path, JsonNode? value)
    {
        string[] parts = path.Split('.');
        JsonObject current = root;
        for (int i = 0; i < parts.Length - 1; i++)
        {
            current[parts[i]] ??= new JsonObject();
            current = current[parts[i]] as JsonObject
                ?? throw new CliException($"{string.Join('.', parts[..(i + 1)])} is not a section of settings here, so {path} cannot be set on it.", 2);
        }

        current[parts[^1]] = value;
    }

    private static string WithFlag(string problem, ParseResult? parse)
    {
        int end = problem.IndexOf(' ', StringComparison.Ordinal);
        return end > 0 && FlagOf(problem[..end], parse) is { } flag ? $"{problem[..^1]} (from {flag})." : problem;
    }

    private static string FlagNote(string key, ParseResult? parse) => FlagOf(key, parse) is { } flag ? $" (from {flag})" : "";

    private static double? Number(JsonNode? node) =>
        node is JsonValue v && v.GetValueKind() == JsonValueKind.Number
            && double.TryParse(v.ToJsonString(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out double d) ? d : null;

    /// <summary>An inline JSON mixture as an object (so the merged file holds it as one), a name or path as a string.</summary>
    private static JsonNode? ObjectiveValue(string value)
    {
        if (!value.TrimStart().StartsWith('{')) return JsonValue.Create(value);
        try
        {
            return TrainingRecipe.ParseJson(value);
        }
        catch (InvalidDataException ex)
        {
            throw new CliException($"--objective: {ex.Message}", 2);
        }
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value;

    private static string WithKey(string description, IEnumerable<string> keys) => $"{description} [config: {string.Join(", ", keys)}]";

    private static SettingFlag Text(string name, string key, string description) => Text(name, [key], description, v => [JsonValue.Create(v)]);

    /// <summary>A flag of one word or path whose value <paramref name="values"/> turns into one value per key; <paramref name="choices"/>, when given, are the words it accepts.</summary>
    private static SettingFlag Text(string name, IReadOnlyList<string> keys, string description, Func<string, JsonNode?[]> values, IReadOnlyList<string>? choices = null)
    {
        var option = new Option<string?>(name) { Description = WithKey(description, keys) };
        if (choices is not null) option.AcceptOnlyFromAmong([.. choices]);
        return new SettingFlag(option, keys, p => p.GetValue(option) is { } v ? Pairs(keys, values(v)) : null);
    }

    private static SettingFlag Texts(string name, string key, string description)
    {
        var option = new Option<string[]>(name) { Description = WithKey(description, [key]), AllowMultipleArgumentsPerToken = false };
        return new SettingFlag(option, [key], p => p.GetValue(option) is { Length: > 0 } v ? [(key, new JsonArray([.. v.Select(s => (JsonNode?)JsonValue.Create(s))]))] : null);
    }

    private static SettingFlag Choice(string name, string key, string description, IReadOnlyList<string> choices) =>
        Text(name, [key], description, v => [JsonValue.Create(v)], choices);

    private static SettingFlag Choice(string name, IReadOnlyList<string> keys, string description, IReadOnlyList<string> choices, Func<string, JsonNode?[]> values) =>
        Text(name, keys, description, values, choices);

    private static SettingFlag Int(string name, string key, string description)
    {
        var option = Cli.OptionalInt(name, WithKey(description, [key]));
        return new SettingFlag(option, [key], p => p.GetValue(option) is { } v ? [(key, JsonValue.Create(v))] : null);
    }

    private static SettingFlag IntOrOff(string name, string key, string description)
    {
        var option = Cli.OptionalInt(name, WithKey(description, [key]));
        return new SettingFlag(option, [key], p => p.GetValue(option) is { } v ? [(key, v == 0 ? null : JsonValue.Create(v))] : null);
    }

    private static SettingFlag Long(string name, string key, string description)
    {
        var option = Cli.OptionalLong(name, WithKey(description, [key]));
        return new SettingFlag(option, [key], p => p.GetValue(option) is { } v ? [(key, JsonValue.Create(v))] : null);
    }

    private static SettingFlag Number(string name, IReadOnlyList<string> keys, string description, Func<double, JsonNode?[]> values)
    {
        var option = Cli.OptionalDouble(name, WithKey(description, keys));
        return new SettingFlag(option, keys, p => p.GetValue(option) is { } v ? Pairs(keys, values(v)) : null);
    }

    private static SettingFlag Switch(string name, string key, string description)
    {
        var option = new Option<bool>(name) { Description = WithKey(description, [key]) };
        return new SettingFlag(option, [key], p => p.GetValue(option) ? [(key, JsonValue.Create(true))] : null);
    }

    private static IReadOnlyList<(string, JsonNode?)> Pairs(IReadOnlyList<string> keys, JsonNode?[] values) =>
        keys.Select((k, i) => (k, values[i])).ToArray();
}
