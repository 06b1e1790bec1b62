using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Training.Recipes;

namespace YingHub.Moe.Training.Objectives;

/// <summary>
/// What a pre-training run trains on: a mixture of objectives (causal LM, prefix LM, span corruption; UL2's
/// mixture-of-denoisers) whose weights can change over the run in <see cref="Schedule"/> stages, as OpenMoE switched
/// from UL2's mixture to plain causal LM late in training. Each sequence of a batch draws its objective from the weights
/// of the stage the step is in. JSON (snake_case): <c>{"objectives": [{"name": "r3_15", "kind": "span_corruption",
/// "mean_span_length": 3, "corruption_rate": 0.15, "mode_token": "[R]"}, ...], "schedule": [{"from": 0, "weights":
/// {"r3_15": 1, ...}}, {"from": 0.8, "weights": {"causal": 1}}]}</c>; docs/training.md shows the whole format.
/// </summary>
public sealed class ObjectiveMixtureOptions : IValidatableOptions
{
    /// <summary>The name of <see cref="Causal"/>, and of <see cref="Ul2"/> (<c>yinghub train --objective</c>).</summary>
    public const string CausalName = "causal", Ul2Name = "ul2";

    /// <summary>The objectives, each with a distinct name. Default: one, <c>causal</c>.</summary>
    public List<ObjectiveOptions> Objectives { get; set; } = [new ObjectiveOptions()];

    /// <summary>
    /// The stages, by increasing <see cref="ObjectiveStage.From"/>, the first from 0; each weighs objectives by name.
    /// Default: one stage, all on <c>causal</c> (a file that names its own objectives names its stages too).
    /// </summary>
    public List<ObjectiveStage> Schedule { get; set; } = [new ObjectiveStage()];

    /// <summary>Plain causal LM on every sequence (what training does without a mixture).</summary>
    public static ObjectiveMixtureOptions Causal() => new()
    {
        Objectives = [new ObjectiveOptions { Name = CausalName, Kind = ObjectiveKind.Causal }],
        Schedule = [new ObjectiveStage { From = 0, Weights = new() { [CausalName] = 1 } }],
    };

    /// <summary>
    /// UL2's mixture of denoisers ("Unifying Language Learning Paradigms", Tay et al. 2022): R (mean span 3 and 8, 15%
    /// corrupted), X (3 and 8 at 50%, 64 at 15% and 50%), and S (prefix LM), with the mode tokens <c>[R]</c>,
    /// <c>[X]</c>, <c>[S]</c>, each sequence drawing one of the seven with equal weight for the whole run. Change the
    /// weights, or add a later stage of <c>causal</c>, in a mixture file.
    /// </summary>
    public static ObjectiveMixtureOptions Ul2()
    {
        ObjectiveOptions Span(string name, double mean, double rate, string mode) =>
            new() { Name = name, Kind = ObjectiveKind.SpanCorruption, MeanSpanLength = mean, CorruptionRate = rate, ModeToken = mode };
        var objectives = new List<ObjectiveOptions>
        {
            Span("r3_15", 3, 0.15, "[R]"), Span("r8_15", 8, 0.15, "[R]"),
            Span("x3_50", 3, 0.5, "[X]"), Span("x8_50", 8, 0.5, "[X]"), Span("x64_15", 64, 0.15, "[X]"), Span("x64_50", 64, 0.5, "[X]"),
            new() { Name = "s", Kind = ObjectiveKind.PrefixLm, ModeToken = "[S]" },
            new() { Name = CausalName, Kind = ObjectiveKind.Causal },
        };
        var weights = objectives.ToDictionary(o => o.Name, o => o.Kind == ObjectiveKind.Causal ? 0.0 : 1.0);
        return new() { Objectives = objectives, Schedule = [new ObjectiveStage { From = 0, Weights = weights }] };
    }

    /// <summary>
    /// The mixture <paramref name="spec"/> names: <c>causal</c>, <c>ul2</c>, a JSON object (as in the type's summary), or
    /// the path of a file holding one.
    /// </summary>
    /// <exception cref="InvalidDataException">Not a name, JSON object or readable file; an unknown key; or an invalid setting (named).</exception>
    public static ObjectiveMixtureOptions Parse(string spec)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(spec);
        string text = spec.Trim();
        if (text.Equals(CausalName, StringComparison.OrdinalIgnoreCase)) return Causal();
        if (text.Equals(Ul2Name, StringComparison.OrdinalIgnoreCase)) return Ul2();
        if (!text.StartsWith('{'))
        {
            if (!File.Exists(text))
                throw new InvalidDataException($"objective '{spec}' is not {CausalName}, {Ul2Name}, a JSON object, or an existing file.");
            text = File.ReadAllText(text);
        }

        return FromJson(TrainingRecipe.ParseJson(text));
    }

    /// <summary>The mixture a JSON object describes, validated.</summary>
    /// <exception cref="InvalidDataException">An unknown key, a value of the wrong type, or an invalid setting; the message names it.</exception>
    public static ObjectiveMixtureOptions FromJson(JsonObject json)
    {
        ArgumentNullException.ThrowIfNull(json);
        var options = OptionsJson.Read<ObjectiveMixtureOptions>(json, "objective", OptionsJson.SnakeCase);
        var errors = options.GetValidationErrors();
        if (errors.Count > 0)
            throw new InvalidDataException(string.Join(" ", errors.Select(e => (e with { Field = "objective." + OptionsJson.KeyOf(typeof(ObjectiveMixtureOptions), e.Field, OptionsJson.SnakeCase) }).Message)));
        return options;
    }

    /// <summary>This mixture as JSON (the form <see cref="FromJson"/> reads).</summary>
    public JsonObject ToJson() => OptionsJson.Write(this, OptionsJson.SnakeCase);

    /// <summary>Whether every stage gives all its weight to causal objectives without mode tokens (plain causal LM).</summary>
    [JsonIgnore]
    public bool IsPlainCausal => Schedule.All(s => s.Weights.Where(w => w.Value > 0).All(w =>
        Objectives.FirstOrDefault(o => o.Name == w.Key) is { Kind: ObjectiveKind.Causal, ModeToken: null }));

    /// <summary>The stage at <paramref name="progress"/> (fraction of the run done, in [0, 1]).</summary>
    public ObjectiveStage StageAt(double progress) => Schedule.Last(s => s.From <= progress);

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Objectives.Count > 0, nameof(Objectives), Objectives.Count, "at least one objective");
        for (int i = 0; i < Objectives.Count; i++) errors.AddNested($"{nameof(Objectives)}[{i}]", Objectives[i]);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var o in Objectives)
            errors.Require(names.Add(o.Name), nameof(Objectives), o.Name, "distinct names");
        errors.Require(Schedule.Count > 0, nameof(Schedule), Schedule.Count, "at least one stage");
        for (int i = 0; i < Schedule.Count; i++)
        {
            errors.AddNested($"{nameof(Schedule)}[{i}]", Schedule[i]);
            foreach (string name in Schedule[i].Weights.Keys)
                errors.Require(names.Contains(name), $"{nameof(Schedule)}[{i}].{nameof(ObjectiveStage.Weights)}", name, "an objective's name: " + string.Join(", ", names));
        }

        if (Schedule.Count > 0) errors.Require(Schedule[0].From == 0, $"{nameof(Schedule)}[0].{nameof(ObjectiveStage.From)}", Schedule[0].From, "0 (the first stage starts the run)");
        for (int i = 1; i < Schedule.Count; i++)
            errors.Require(Schedule[i].From > Schedule[i - 1].From, $"{nameof(Schedule)}[{i}].{nameof(ObjectiveStage.From)}", Schedule[i].From, $"> {Schedule[i - 1].From} (stages in order)");
        return errors;
    }

    /// <summary>A deep copy.</summary>
    public ObjectiveMixtureOptions Clone() => new() { Objectives = Objectives.Select(o => o.Clone()).ToList(), Schedule = Schedule.Select(s => s.Clone()).ToList() };
}
