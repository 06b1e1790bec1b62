using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Optimization;

/// <summary>Options of <see cref="GroupedAdamW.Create"/>: AdamW hyperparameters and the parameter-group rules.</summary>
public sealed class AdamWGroupOptions : IValidatableOptions
{
    /// <summary>Base learning rate (a schedule usually overrides it every step); finite, &gt; 0.</summary>
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>First-moment decay; in [0, 1).</summary>
    public double Beta1 { get; set; } = 0.9;

    /// <summary>Second-moment decay; in [0, 1).</summary>
    public double Beta2 { get; set; } = 0.999;

    /// <summary>Denominator epsilon; finite, &gt; 0.</summary>
    public double Epsilon { get; set; } = 1e-8;

    /// <summary>Decoupled weight decay of the decayed groups; finite, &gt;= 0.</summary>
    public double WeightDecay { get; set; } = 0.01;

    /// <summary>Learning-rate multiplier of the router groups; finite, &gt; 0 (1 keeps the base rate).</summary>
    public double RouterLearningRateMultiplier { get; set; } = 1.0;

    /// <summary>
    /// Run the step as libtorch's fused multi-tensor kernel (<see cref="FusedAdamW"/>, PyTorch's <c>fused=True</c>):
    /// the same update in one pass over memory (libtorch ≥ 2.4; this library is built against 2.10). False: TorchSharp's
    /// per-parameter AdamW.
    /// </summary>
    public bool Fused { get; set; } = true;

    /// <summary>Name fragments of router parameters (separate groups, see <see cref="RouterLearningRateMultiplier"/>).</summary>
    public List<string> RouterNameContains { get; set; } = [.. ParameterNamePatterns.Router];

    /// <summary>
    /// Name fragments of parameters that never get weight decay even when they are matrices: embeddings and norms.
    /// Biases (<see cref="ParameterNamePatterns.IsBias"/>, stacked ones included) and parameters with fewer than 2
    /// dimensions (norm weights, the router's noise temperature) never get decay either.
    /// </summary>
    public List<string> NoDecayNameContains { get; set; } = [.. ParameterNamePatterns.Embeddings, .. ParameterNamePatterns.Norms];

    /// <summary>
    /// Parameters with a learning rate of their own (a PPO value head, an adapter): each rule takes the parameters whose
    /// name contains one of its fragments (the first matching rule wins, before the router rule) into the groups
    /// <c>{Name}_decay</c> and <c>{Name}_no_decay</c>, split by the same decay rules, with the rule's multiplier.
    /// </summary>
    public List<LearningRateGroupRule> LearningRateGroups { get; set; } = [];

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(double.IsFinite(LearningRate) && LearningRate > 0, nameof(LearningRate), LearningRate, "finite and > 0");
        errors.Require(Beta1 is >= 0 and < 1, nameof(Beta1), Beta1, "[0, 1)");
        errors.Require(Beta2 is >= 0 and < 1, nameof(Beta2), Beta2, "[0, 1)");
        errors.Require(double.IsFinite(Epsilon) && Epsilon > 0, nameof(Epsilon), Epsilon, "finite and > 0");
        errors.Require(double.IsFinite(WeightDecay) && WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "finite and >= 0");
        errors.Require(double.IsFinite(RouterLearningRateMultiplier) && RouterLearningRateMultiplier > 0,
            nameof(RouterLearningRateMultiplier), RouterLearningRateMultiplier, "finite and > 0");
        errors.Require(RouterNameContains is not null && RouterNameContains.All(p => !string.IsNullOrEmpty(p)),
            nameof(RouterNameContains), RouterNameContains is null ? null : string.Join(",", RouterNameContains), "a list of non-empty fragments");
        errors.Require(NoDecayNameContains is not null && NoDecayNameContains.All(p => !string.IsNullOrEmpty(p)),
            nameof(NoDecayNameContains), NoDecayNameContains is null ? null : string.Join(",", NoDecayNameContains), "a list of non-empty fragments");
        errors.Require(LearningRateGroups is not null, nameof(LearningRateGroups), null, "a list of rules");
        var names = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < (LearningRateGroups?.Count ?? 0); i++)
        {
            var rule = LearningRateGroups![i];
            errors.Require(rule is not null, $"{nameof(LearningRateGroups)}[{i}]", null, "a rule");
            if (rule is null) continue;
            errors.AddNested($"{nameof(LearningRateGroups)}[{i}]", rule);
            errors.Require(rule.Name is null || names.Add(rule.Name), $"{nameof(LearningRateGroups)}[{i}].{nameof(rule.Name)}", rule.Name, "a name no other rule has");
        }

        return errors;
    }
}

/// <summary>
/// A parameter group with its own learning-rate multiplier (<see cref="AdamWGroupOptions.LearningRateGroups"/>). A rule has
/// no meaningful default (a group needs a name and the parameters it takes), so it is built from its fields.
/// </summary>
/// <param name="name">The group's name prefix.</param>
/// <param name="nameContains">Name fragments of the parameters it takes.</param>
/// <param name="learningRateMultiplier">Multiplier of the scheduled learning rate.</param>
public sealed class LearningRateGroupRule(string name, IReadOnlyList<string> nameContains, double learningRateMultiplier = 1.0) : IValidatableOptions
{
    /// <summary>The group's name prefix: lower-case letters, digits and underscores, not one of the built-in groups' names.</summary>
    public string Name { get; set; } = name;

    /// <summary>Name fragments of the parameters it takes; at least one, none empty.</summary>
    public List<string> NameContains { get; set; } = nameContains is null ? null! : [.. nameContains];

    /// <summary>Multiplier of the scheduled learning rate; finite, &gt; 0.</summary>
    public double LearningRateMultiplier { get; set; } = learningRateMultiplier;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(!string.IsNullOrEmpty(Name) && Name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '_')
            && Name is not ("router" or "decay" or "no_decay"), nameof(Name), Name, "lower-case letters, digits and '_', not 'router', 'decay' or 'no_decay'");
        errors.Require(NameContains is { Count: > 0 } && NameContains.All(p => !string.IsNullOrEmpty(p)),
            nameof(NameContains), NameContains is null ? null : string.Join(",", NameContains), "a list of one or more non-empty fragments");
        errors.Require(double.IsFinite(LearningRateMultiplier) && LearningRateMultiplier > 0, nameof(LearningRateMultiplier), LearningRateMultiplier, "finite and > 0");
        return errors;
    }
}
