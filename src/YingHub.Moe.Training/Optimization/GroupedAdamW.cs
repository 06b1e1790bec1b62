using TorchSharp.Modules;

namespace YingHub.Moe.Training.Optimization;

/// <summary>
/// A TorchSharp <see cref="AdamW"/> with parameter groups, and the description of those groups. Weight decay applies
/// only to matrices (dim ≥ 2) that are not embeddings or norms; biases, norm weights and embeddings get none. Router
/// parameters form their own groups (decay / no decay) with <see cref="AdamWGroupOptions.RouterLearningRateMultiplier"/>.
/// Empty groups are left out; parameters with <c>requires_grad = false</c> are left out (frozen).
/// </summary>
public sealed class GroupedAdamW : IDisposable
{
    /// <summary>Group of decayed non-router parameters.</summary>
    public const string DecayGroup = "decay";

    /// <summary>Group of non-decayed non-router parameters.</summary>
    public const string NoDecayGroup = "no_decay";

    /// <summary>Group of decayed router parameters.</summary>
    public const string RouterDecayGroup = "router_decay";

    /// <summary>Group of non-decayed router parameters.</summary>
    public const string RouterNoDecayGroup = "router_no_decay";

    private const int MatrixRank = 2;

    private GroupedAdamW(AdamW optimizer, IReadOnlyList<ParameterGroupInfo> groups)
    {
        Optimizer = optimizer;
        Groups = groups;
    }

    /// <summary>The optimizer; owned by this object.</summary>
    public AdamW Optimizer { get; }

    /// <summary>The groups, in the optimizer's group order.</summary>
    public IReadOnlyList<ParameterGroupInfo> Groups { get; }

    /// <summary>Each group's learning-rate multiplier, in group order (pass to <c>LearningRateApplier</c>).</summary>
    public IReadOnlyList<double> LearningRateMultipliers => Groups.Select(g => g.LearningRateMultiplier).ToArray();

    /// <summary>Builds the grouped optimizer.</summary>
    /// <param name="parameters">Named parameters, e.g. <c>module.named_parameters()</c>. A parameter listed twice (tied weights) is added once and gets no decay if any of its names says so.</param>
    /// <param name="options">Hyperparameters and group rules.</param>
    /// <exception cref="ArgumentException">The options are invalid or no parameter requires a gradient.</exception>
    public static GroupedAdamW Create(IEnumerable<(string name, Parameter parameter)> parameters, AdamWGroupOptions options)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();

        var byHandle = new Dictionary<IntPtr, (Parameter P, List<string> Names)>();
        var order = new List<IntPtr>();
        foreach ((string name, Parameter p) in parameters)
        {
            if (!p.requires_grad) continue;
            if (!byHandle.TryGetValue(p.Handle, out var entry))
            {
                entry = (p, []);
                byHandle[p.Handle] = entry;
                order.Add(p.Handle);
            }

            entry.Names.Add(name);
        }

        if (order.Count == 0)
            throw new ArgumentException("parameters contains no parameter with requires_grad = true.", nameof(parameters));

        string[] groupNames = [DecayGroup, NoDecayGroup, RouterDecayGroup, RouterNoDecayGroup];
        var members = groupNames.ToDictionary(n => n, _ => new List<(string Name, Parameter P)>(), StringComparer.Ordinal);
        foreach (IntPtr handle in order)
        {
            (Parameter p, List<string> names) = byHandle[handle];
            bool router = names.Any(n => ParameterNamePatterns.MatchesAny(n, options.RouterNameContains));
            bool decay = p.dim() >= MatrixRank && !names.Any(n => ParameterNamePatterns.MatchesAny(n, options.NoDecayNameContains));
            string group = (router, decay) switch
            {
                (false, true) => DecayGroup,
                (false, false) => NoDecayGroup,
                (true, true) => RouterDecayGroup,
                (true, false) => RouterNoDecayGroup,
            };
            members[group].Add((names[0], p));
        }

        var infos = new List<ParameterGroupInfo>();
        var paramGroups = new List<AdamW.ParamGroup>();
        foreach (string name in groupNames.Where(n => members[n].Count > 0))
        {
            bool router = name is RouterDecayGroup or RouterNoDecayGroup;
            double multiplier = router ? options.RouterLearningRateMultiplier : 1.0;
            double decay = name is DecayGroup or RouterDecayGroup ? options.WeightDecay : 0.0;
            List<(string Name, Parameter P)> list = members[name];
            infos.Add(new ParameterGroupInfo(name, decay, multiplier, list.Select(m => m.Name).ToArray(), list.Sum(m => m.P.numel())));
            paramGroups.Add(new AdamW.ParamGroup(list.Select(m => m.P).ToArray(),
                lr: options.LearningRate * multiplier, beta1: options.Beta1, beta2: options.Beta2, eps: options.Epsilon, weight_decay: decay));
        }

        var optimizer = new AdamW(paramGroups, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
        return new GroupedAdamW(optimizer, infos);
    }

    /// <summary>A multi-line description of the groups (name, decay, LR multiplier, counts), for the training log.</summary>
    public string Describe() => string.Join(Environment.NewLine, Groups.Select(g =>
        FormattableString.Invariant(
            $"{g.Name}: weight_decay={g.WeightDecay}, lr_multiplier={g.LearningRateMultiplier}, tensors={g.ParameterNames.Count}, elements={g.ElementCount}")));

    /// <summary>Disposes the optimizer and its state.</summary>
    public void Dispose() => Optimizer.Dispose();
}
