using System.Text.Json;
using System.Text.Json.Nodes;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Training.Objectives;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Training.Recipes;

/// <summary>
/// A training run described as data, the form of <c>yinghub train --config</c> files and of the recipes in
/// <c>samples/recipes</c>: the corpus and tokenizer, a <c>model</c> section (a preset name plus any
/// <see cref="MoeModelOptions"/> keys as in <c>config.json</c>, or the path of a whole <c>config.json</c>), a
/// <c>trainer</c> section (every <see cref="TrainerOptions"/> setting, snake_case, the schedule by name in
/// <c>schedule</c>) and a <c>tracking</c> section (<see cref="TrackingOptions"/>). Every key is checked: an unknown one is
/// an error naming it and the keys its section allows (see <see cref="OptionsJson"/>).
/// </summary>
public sealed class TrainingRecipe
{
    /// <summary>The key of the model section.</summary>
    public const string ModelKey = "model";

    /// <summary>The key of the trainer section.</summary>
    public const string TrainerKey = "trainer";

    /// <summary>The key of the tracking section.</summary>
    public const string TrackingKey = "tracking";

    /// <summary>The key, inside the model section, of the preset the other model keys change.</summary>
    public const string PresetKey = "preset";

    /// <summary>The keys a recipe's top level may hold (keys starting with <c>_</c> are notes).</summary>
    public static IReadOnlyList<string> TopLevelKeys { get; } = ["data", "tokenizer", "block_size", "init_from", ObjectiveKey, ModelKey, TrainerKey, TrackingKey];

    /// <summary>The key of the objective: <c>causal</c>, <c>ul2</c>, a mixture object, or the path of a mixture file.</summary>
    public const string ObjectiveKey = "objective";

    /// <summary>The corpus: a text file, or a name the application knows (the CLI: <c>tinyshakespeare</c>); null: the application's default.</summary>
    public string? Data { get; init; }

    /// <summary>The tokenizer by name (the CLI: char, gpt2, cl100k, o200k); null: the application's default, or the checkpoint's with <see cref="InitFrom"/>.</summary>
    public string? Tokenizer { get; init; }

    /// <summary>Tokens per training sequence; null: the model's context length.</summary>
    public int? BlockSize { get; init; }

    /// <summary>A checkpoint directory whose model, weights and tokenizer a fine-tuning run starts from (then there is no model section).</summary>
    public string? InitFrom { get; init; }

    /// <summary>
    /// What the run trains on (<see cref="ObjectiveMixtureOptions"/>; UL2's denoisers with their special tokens added to
    /// the tokenizer); null: causal LM.
    /// </summary>
    public ObjectiveMixtureOptions? Objective { get; init; }

    /// <summary>The preset the model section starts from (<see cref="MoePresets"/>), or null.</summary>
    public string? Preset { get; init; }

    /// <summary>The model: <see cref="Preset"/>'s options (or <see cref="MoeModelOptions"/>' defaults) changed by the model section's keys; null without a model section.</summary>
    public MoeModelOptions? Model { get; init; }

    /// <summary>
    /// The model keys the recipe gave (all of them for a <c>config.json</c> path; the preset's other values were not
    /// chosen for this run): an application sets what the recipe left open, e.g. <c>vocab_size</c> from its tokenizer.
    /// </summary>
    public IReadOnlySet<string> GivenModelKeys { get; init; } = new HashSet<string>();

    /// <summary>The trainer: <see cref="TrainerOptions"/>' defaults changed by the trainer section's keys.</summary>
    public TrainerOptions Trainer { get; init; } = new();

    /// <summary>Where metrics go, or null without a tracking section.</summary>
    public TrackingOptions? Tracking { get; init; }

    /// <summary>Reads the recipe file at <paramref name="path"/> (a model section's <c>config.json</c> path is relative to it).</summary>
    /// <exception cref="InvalidDataException">Not a JSON object, an unknown key, or a value of the wrong type; the message names it.</exception>
    /// <exception cref="IOException">The file cannot be read.</exception>
    public static TrainingRecipe Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return FromJson(ReadJson(path), Path.GetDirectoryName(Path.GetFullPath(path)));
    }

    /// <summary>Reads a recipe from JSON text; <paramref name="baseDirectory"/> resolves a model section's relative <c>config.json</c> path.</summary>
    /// <exception cref="InvalidDataException">Not a JSON object, an unknown key, or a value of the wrong type; the message names it.</exception>
    public static TrainingRecipe Parse(string json, string? baseDirectory = null) => FromJson(ParseJson(json), baseDirectory);

    /// <summary>The JSON object in the file at <paramref name="path"/> (comments and trailing commas allowed, a repeated key refused).</summary>
    /// <exception cref="InvalidDataException">Not valid JSON, or not an object.</exception>
    public static JsonObject ReadJson(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        return ParseJson(File.ReadAllText(path));
    }

    /// <summary>The JSON object in <paramref name="json"/> (comments and trailing commas allowed, a repeated key refused).</summary>
    /// <exception cref="InvalidDataException">Not valid JSON, or not an object.</exception>
    public static JsonObject ParseJson(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json, documentOptions: new JsonDocumentOptions
            {
                CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true, AllowDuplicateProperties = false,
            });
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"not valid JSON: {ex.Message}", ex);
        }

        return node as JsonObject ?? throw new InvalidDataException($"a recipe must be a JSON object of settings; got {node?.GetValueKind().ToString().ToLowerInvariant() ?? "null"}.");
    }

    /// <summary>The recipe <paramref name="root"/> describes.</summary>
    /// <exception cref="InvalidDataException">An unknown key or a value of the wrong type; the message names it.</exception>
    public static TrainingRecipe FromJson(JsonObject root, string? baseDirectory = null)
    {
        ArgumentNullException.ThrowIfNull(root);
        foreach (var (key, _) in root)
        {
            if (!OptionsJson.IsNote(key) && !TopLevelKeys.Contains(key))
                throw new InvalidDataException($"unknown key '{key}'; the allowed keys are {string.Join(", ", TopLevelKeys)}{Hint(key)}.");
        }

        var (preset, model, given) = root[ModelKey] is { } section ? ReadModel(section, baseDirectory) : (null, null, new HashSet<string>());
        var trainer = new TrainerOptions();
        if (root[TrainerKey] is { } t) OptionsJson.Populate(trainer, Section(t, TrainerKey), TrainerKey, OptionsJson.SnakeCase);
        TrackingOptions? tracking = null;
        if (root[TrackingKey] is { } k)
        {
            tracking = new TrackingOptions();
            OptionsJson.Populate(tracking, Section(k, TrackingKey), TrackingKey, OptionsJson.SnakeCase);
        }

        return new TrainingRecipe
        {
            Objective = root[ObjectiveKey] is { } objective ? ReadObjective(objective, baseDirectory) : null,
            Data = Text(root, "data"), Tokenizer = Text(root, "tokenizer"), InitFrom = Text(root, "init_from"),
            BlockSize = root["block_size"] is { } b ? Integer(b, "block_size") : null,
            Preset = preset, Model = model, GivenModelKeys = given, Trainer = trainer, Tracking = tracking,
        };
    }

    /// <summary>
    /// This recipe as JSON, every setting written out (the model section as the preset plus every key), so the run can
    /// be repeated from it.
    /// </summary>
    /// <exception cref="InvalidOperationException"><see cref="TrainerOptions.Schedule"/> holds a schedule object, which a file cannot express.</exception>
    public JsonObject ToJson()
    {
        if (Trainer.Schedule is not null)
            throw new InvalidOperationException($"TrainerOptions.Schedule holds a {Trainer.Schedule.GetType().Name} object, which a config file cannot express; name the schedule in TrainerOptions.LearningRateSchedule instead.");
        var root = new JsonObject();
        if (Data is not null) root["data"] = Data;
        if (Tokenizer is not null) root["tokenizer"] = Tokenizer;
        if (BlockSize is not null) root["block_size"] = BlockSize;
        if (InitFrom is not null) root["init_from"] = InitFrom;
        if (Objective is not null) root[ObjectiveKey] = Objective.ToJson();
        if (Model is not null)
        {
            var model = new JsonObject();
            if (Preset is not null) model[PresetKey] = Preset;
            foreach (var (key, value) in OptionsJson.Write(Model, OptionsJson.ModelConfig)) model[key] = value?.DeepClone();
            root[ModelKey] = model;
        }

        root[TrainerKey] = OptionsJson.Write(Trainer, OptionsJson.SnakeCase);
        if (Tracking is not null) root[TrackingKey] = OptionsJson.Write(Tracking, OptionsJson.SnakeCase);
        return root;
    }

    /// <summary>Every invalid setting, each naming its key path (<c>trainer.learning_rate = 20 is invalid; allowed: (0, 10].</c>).</summary>
    public IReadOnlyList<string> GetProblems()
    {
        var problems = new List<string>();
        void Add(string section, Type type, IValidatableOptions? options)
        {
            if (options is null) return;
            foreach (var e in options.GetValidationErrors())
                problems.Add((e with { Field = $"{section}.{OptionsJson.KeyOf(type, e.Field, section == ModelKey ? OptionsJson.ModelConfig : OptionsJson.SnakeCase)}" }).Message);
        }

        Add(ModelKey, typeof(MoeModelOptions), Model);
        Add(TrainerKey, typeof(TrainerOptions), Trainer);
        Add(TrackingKey, typeof(TrackingOptions), Tracking);
        if (BlockSize is < 1) problems.Add($"block_size = {BlockSize} is invalid; allowed: >= 1.");
        return problems;
    }

    private static (string? Preset, MoeModelOptions Model, HashSet<string> Given) ReadModel(JsonNode section, string? baseDirectory)
    {
        if (section.GetValueKind() == JsonValueKind.String)
        {
            // the path of a whole config.json (e.g. a checkpoint's)
            string path = section.GetValue<string>();
            string full = Path.IsPathRooted(path) || baseDirectory is null ? path : Path.Combine(baseDirectory, path);
            JsonObject config;
            try
            {
                config = ReadJson(full);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidDataException)
            {
                throw new InvalidDataException($"{ModelKey}: '{path}' cannot be read as a config.json: {ex.Message}", ex);
            }

            return (null, OptionsJson.Read<MoeModelOptions>(config, $"{ModelKey} ('{path}')", OptionsJson.ModelConfig),
                [.. OptionsJson.Keys(typeof(MoeModelOptions), OptionsJson.ModelConfig)]);
        }

        var obj = Section(section, ModelKey).DeepClone().AsObject();
        string? preset = null;
        if (obj.Remove(PresetKey, out var name))
        {
            preset = name?.GetValueKind() == JsonValueKind.String ? name.GetValue<string>()
                : throw new InvalidDataException($"{ModelKey}.{PresetKey} must be one of {string.Join(", ", MoePresets.Names)}; got {name?.ToJsonString() ?? "null"}.");
            if (!MoePresets.Names.Contains(preset, StringComparer.OrdinalIgnoreCase))
                throw new InvalidDataException($"{ModelKey}.{PresetKey} '{preset}' is not one of {string.Join(", ", MoePresets.Names)}.");
        }

        var model = preset is null ? new MoeModelOptions() : MoePresets.Get(preset);
        try
        {
            OptionsJson.Populate(model, obj, ModelKey, OptionsJson.ModelConfig);
        }
        catch (InvalidDataException ex) when (ex.Message.Contains("unknown key", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{ex.Message[..^1]}, {PresetKey}.", ex);
        }

        return (preset, model, [.. obj.Select(p => p.Key).Where(k => !OptionsJson.IsNote(k))]);
    }

    private static ObjectiveMixtureOptions ReadObjective(JsonNode node, string? baseDirectory)
    {
        if (node is JsonObject obj) return ObjectiveMixtureOptions.FromJson(obj);
        if (node.GetValueKind() != JsonValueKind.String)
            throw new InvalidDataException($"{ObjectiveKey} must be {ObjectiveMixtureOptions.CausalName}, {ObjectiveMixtureOptions.Ul2Name}, a mixture object or a file path; got {node.ToJsonString()}.");
        string spec = node.GetValue<string>();
        bool named = spec.Trim() is var n && (n.Equals(ObjectiveMixtureOptions.CausalName, StringComparison.OrdinalIgnoreCase) || n.Equals(ObjectiveMixtureOptions.Ul2Name, StringComparison.OrdinalIgnoreCase));
        string resolved = named || Path.IsPathRooted(spec) || baseDirectory is null || spec.TrimStart().StartsWith('{') ? spec : Path.Combine(baseDirectory, spec);
        try
        {
            return ObjectiveMixtureOptions.Parse(resolved);
        }
        catch (IOException ex)
        {
            throw new InvalidDataException($"{ObjectiveKey}: '{spec}' cannot be read: {ex.Message}", ex);
        }
    }

    private static JsonObject Section(JsonNode node, string key) =>
        node as JsonObject ?? throw new InvalidDataException($"{key} must be a JSON object of settings; got {node.ToJsonString()}.");

    private static string? Text(JsonObject root, string key) => root[key] switch
    {
        null => null,
        var v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        var v => throw new InvalidDataException($"{key} must be a string; got {v.ToJsonString()}."),
    };

    private static int Integer(JsonNode node, string key) =>
        node.GetValueKind() == JsonValueKind.Number && node.AsValue().TryGetValue(out int i) ? i
        : throw new InvalidDataException($"{key} must be an integer; got {node.ToJsonString()}.");

    /// <summary>Where a flat key of the old config format now lives.</summary>
    private static string Hint(string key)
    {
        string? trainerKey = key switch
        {
            "steps" => "steps", "batch" => "batch_size", "lr" => "learning_rate", "seed" => "seed", "amp" => "precision",
            "out" => "checkpoint_directory", "save_every" => "checkpoint_interval", "save_every_minutes" => "checkpoint_interval_minutes", "freeze" => "freeze",
            _ => null,
        };
        if (trainerKey is not null) return $" (did you mean {TrainerKey}.{trainerKey}?)";
        return key switch
        {
            "preset" => $" (did you mean {ModelKey}.{PresetKey}?)",
            "dropout" => $" (did you mean {ModelKey}.hidden_dropout?)",
            "block" => " (did you mean block_size?)",
            _ => "",
        };
    }
}
