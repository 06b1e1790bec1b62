using System.Globalization;
using System.Text.Json;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Training;

namespace YingHub.Moe.Cli;

/// <summary>
/// The settings of <c>yinghub train</c> as given, each null when not given: from the command line, or from a
/// <c>--config</c> JSON file with the snake_case keys of <see cref="TrainConfig.Keys"/>.
/// </summary>
internal sealed record TrainArguments
{
    public string? Data { get; init; }
    public string? Preset { get; init; }
    public string? Tokenizer { get; init; }
    public int? Steps { get; init; }
    public int? Batch { get; init; }
    public int? Block { get; init; }
    public double? LearningRate { get; init; }
    public long? Seed { get; init; }
    public string? Output { get; init; }
    public string? Amp { get; init; }
    public string? InitFrom { get; init; }
    public double? Dropout { get; init; }
    public int? SaveEvery { get; init; }
    public double? SaveEveryMinutes { get; init; }
    public IReadOnlyList<string>? Freeze { get; init; }

    /// <summary>Each setting of this, or else of <paramref name="fallback"/> (this overrides it).</summary>
    public TrainArguments Over(TrainArguments fallback) => new()
    {
        Data = Data ?? fallback.Data, Preset = Preset ?? fallback.Preset, Tokenizer = Tokenizer ?? fallback.Tokenizer,
        Steps = Steps ?? fallback.Steps, Batch = Batch ?? fallback.Batch, Block = Block ?? fallback.Block,
        LearningRate = LearningRate ?? fallback.LearningRate, Seed = Seed ?? fallback.Seed, Output = Output ?? fallback.Output,
        Amp = Amp ?? fallback.Amp, InitFrom = InitFrom ?? fallback.InitFrom, Dropout = Dropout ?? fallback.Dropout,
        SaveEvery = SaveEvery ?? fallback.SaveEvery, SaveEveryMinutes = SaveEveryMinutes ?? fallback.SaveEveryMinutes, Freeze = Freeze ?? fallback.Freeze,
    };
}

/// <summary>
/// Reads <c>--config</c> files and merges them with the command line into <see cref="TrainSettings"/>: a flag given on
/// the command line wins over the file, the file over the defaults. Pure: no torch, no file system but
/// <see cref="Read"/>.
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
    public const string DefaultAmp = "none";
    public const int DefaultSaveEvery = 500;
    public const double DefaultSaveEveryMinutes = 10;
    public static readonly string DefaultOutput = Path.Combine("runs", "train");

    public static readonly IReadOnlyList<string> Tokenizers = ["char", "gpt2", "cl100k", "o200k"];
    public static readonly IReadOnlyList<string> AmpModes = ["none", "bf16", "fp16"];

    /// <summary>The keys a config file may hold.</summary>
    public static readonly IReadOnlyList<string> Keys = ["steps", "batch", "block", "lr", "preset", "tokenizer", "amp", "seed", "out", "data", "init_from", "dropout", "save_every", "save_every_minutes", "freeze"];

    /// <summary>Reads the config file at <paramref name="path"/>.</summary>
    /// <exception cref="CliException">The file is missing, unreadable, not JSON, or holds an unknown key or a value of the wrong type.</exception>
    public static TrainArguments Read(string path)
    {
        string json;
        try
        {
            json = File.ReadAllText(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new CliException($"--config '{path}' cannot be read: {ex.Message}");
        }

        return Parse(json, path);
    }

    /// <summary>The settings in <paramref name="json"/>, a JSON object (<paramref name="source"/> names it in messages).</summary>
    /// <exception cref="CliException">Not a JSON object, an unknown key (the message lists the allowed ones), or a value of the wrong type.</exception>
    public static TrainArguments Parse(string json, string source)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException ex)
        {
            throw new CliException($"--config '{source}' is not valid JSON: {ex.Message}");
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new CliException($"--config '{source}' must hold a JSON object of settings; it holds {document.RootElement.ValueKind.ToString().ToLowerInvariant()}.");
            var result = new TrainArguments();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var property in document.RootElement.EnumerateObject())
            {
                string key = property.Name;
                if (!seen.Add(key)) throw new CliException($"--config '{source}': the key '{key}' appears twice.");
                var value = property.Value;
                result = key switch
                {
                    "steps" => result with { Steps = Int(source, key, value) },
                    "batch" => result with { Batch = Int(source, key, value) },
                    "block" => result with { Block = Int(source, key, value) },
                    "lr" => result with { LearningRate = Number(source, key, value) },
                    "seed" => result with { Seed = Long(source, key, value) },
                    "preset" => result with { Preset = Text(source, key, value) },
                    "tokenizer" => result with { Tokenizer = Text(source, key, value) },
                    "amp" => result with { Amp = Text(source, key, value) },
                    "out" => result with { Output = Text(source, key, value) },
                    "data" => result with { Data = Text(source, key, value) },
                    "init_from" => result with { InitFrom = Text(source, key, value) },
                    "dropout" => result with { Dropout = Number(source, key, value) },
                    "save_every" => result with { SaveEvery = Int(source, key, value) },
                    "save_every_minutes" => result with { SaveEveryMinutes = Number(source, key, value) },
                    "freeze" => result with { Freeze = Texts(source, key, value) },
                    _ => throw new CliException($"--config '{source}': unknown key '{key}'; the allowed keys are {string.Join(", ", Keys)}.", 2),
                };
            }

            return result;
        }
    }

    /// <summary>
    /// The settings of a run: <paramref name="commandLine"/> over <paramref name="file"/> over the defaults, checked.
    /// </summary>
    /// <exception cref="CliException">A value is out of range or not one of its choices, or the settings contradict each other (exit code 2).</exception>
    public static TrainSettings Merge(TrainArguments commandLine, TrainArguments? file, bool resume)
    {
        var a = file is null ? commandLine : commandLine.Over(file);
        var problems = new List<string>();
        int steps = a.Steps ?? DefaultSteps, batch = a.Batch ?? DefaultBatch;
        double lr = a.LearningRate ?? DefaultLearningRate;
        if (steps < 1) problems.Add($"steps must be at least 1 (got {steps}).");
        if (batch < 1) problems.Add($"batch must be at least 1 (got {batch}).");
        if (a.Block is < 1) problems.Add($"block must be at least 1 (got {a.Block}).");
        if (!(lr > 0 && lr <= 10)) problems.Add($"lr must be in (0, 10] (got {lr.ToString(CultureInfo.InvariantCulture)}).");
        if (a.SaveEvery is < 0) problems.Add($"save_every must be 0 (off) or a number of steps (got {a.SaveEvery}).");
        if (a.SaveEveryMinutes is { } minutes && !(minutes >= 0 && minutes <= 525_600))
            problems.Add($"save_every_minutes must be 0 (off) or in (0, 525600] (got {minutes.ToString(CultureInfo.InvariantCulture)}).");
        if (a.Freeze is { } freeze && freeze.Any(string.IsNullOrWhiteSpace)) problems.Add("freeze patterns must not be empty.");
        if (a.Dropout is { } p && !(p >= 0 && p < 1)) problems.Add($"dropout must be in [0, 1) (got {p.ToString(CultureInfo.InvariantCulture)}).");
        if (a.Dropout is not null && a.InitFrom is not null)
            problems.Add("dropout sets up a new model; with --init-from the model options come from the checkpoint.");
        string preset = a.Preset ?? DefaultPreset;
        if (!MoePresets.Names.Contains(preset)) problems.Add($"preset '{preset}' is not one of {string.Join(", ", MoePresets.Names)}.");
        if (a.Tokenizer is { } t && !Tokenizers.Contains(t)) problems.Add($"tokenizer '{t}' is not one of {string.Join(", ", Tokenizers)}.");
        string amp = a.Amp ?? DefaultAmp;
        if (!AmpModes.Contains(amp)) problems.Add($"amp '{amp}' is not one of {string.Join(", ", AmpModes)}.");
        foreach (var (name, value) in new[] { ("data", a.Data), ("out", a.Output), ("init_from", a.InitFrom) })
        {
            if (value is not null && string.IsNullOrWhiteSpace(value)) problems.Add($"{name} must not be empty.");
        }

        if (a.InitFrom is not null)
        {
            if (resume) problems.Add("--init-from starts a new run from a checkpoint's weights and --resume continues a run; give one of them.");
            if (a.Preset is not null && a.Preset != DefaultPreset)
                problems.Add($"--preset {a.Preset} cannot be combined with --init-from: the model options come from the checkpoint '{a.InitFrom}'.");
        }

        if (problems.Count > 0) throw new CliException(string.Join(" ", problems), 2);
        return new TrainSettings(
            a.Data ?? DefaultData, preset, a.InitFrom is null ? a.Tokenizer ?? DefaultTokenizer : a.Tokenizer, steps, batch, a.Block, lr,
            a.Seed ?? DefaultSeed, a.Output ?? DefaultOutput, resume, Precision(amp), a.InitFrom, Dropout: a.Dropout,
            SaveEvery: a.SaveEvery ?? DefaultSaveEvery, SaveEveryMinutes: a.SaveEveryMinutes ?? DefaultSaveEveryMinutes, Freeze: a.Freeze is { Count: > 0 } f ? f : null);
    }

    /// <summary>The trainer's precision for an <c>--amp</c> value.</summary>
    public static TrainingPrecision Precision(string amp) => amp switch
    {
        "bf16" => TrainingPrecision.Bf16,
        "fp16" => TrainingPrecision.Fp16,
        "none" => TrainingPrecision.Fp32,
        _ => throw new CliException($"--amp '{amp}' is not one of {string.Join(", ", AmpModes)}.", 2),
    };

    private static int Int(string source, string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int i) ? i : throw WrongType(source, key, value, "an integer");

    private static long Long(string source, string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out long i) ? i : throw WrongType(source, key, value, "an integer");

    private static double Number(string source, string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out double d) ? d : throw WrongType(source, key, value, "a number");

    private static string Text(string source, string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.String ? value.GetString()! : throw WrongType(source, key, value, "a string");

    private static IReadOnlyList<string> Texts(string source, string key, JsonElement value) =>
        value.ValueKind == JsonValueKind.Array && value.EnumerateArray().All(e => e.ValueKind == JsonValueKind.String)
            ? value.EnumerateArray().Select(e => e.GetString()!).ToArray()
            : throw WrongType(source, key, value, "an array of strings");

    private static CliException WrongType(string source, string key, JsonElement value, string expected) =>
        new($"--config '{source}': '{key}' must be {expected}; got {value.GetRawText()}.", 2);
}
