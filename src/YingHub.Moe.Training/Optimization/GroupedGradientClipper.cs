using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Optimization;

/// <summary>
/// Clips gradients per parameter group (e.g. router, experts, other), each to its own max L2 norm, then clips all of
/// them together to a global max norm, without a host sync. The parameters are classified once, at construction.
/// </summary>
/// <remarks>
/// Per step: one norm per parameter that has a gradient, one stack and norm per group, about ten small ops for the
/// coefficients, then one in-place multiply per gradient (by exactly 1 when nothing is clipped, so unclipped
/// gradients stay bit-identical). The coefficients follow PyTorch's <c>clip_grad_norm_</c>:
/// <c>min(1, max_norm / (norm + 1e-6))</c>. The global clip acts on the gradients after the group clips. Parameters
/// whose gradient is null are skipped; non-finite norms are not special-cased (the loss scaler's job).
/// </remarks>
public sealed class GroupedGradientClipper : IDisposable
{
    /// <summary>The epsilon PyTorch's <c>clip_grad_norm_</c> adds to the norm.</summary>
    public const double NormEpsilon = 1e-6;

    /// <summary>Label of entry 0 of <see cref="ClipGradients"/>'s result.</summary>
    public const string GlobalLabel = "global";

    /// <summary>Label of the last entry of <see cref="ClipGradients"/>'s result.</summary>
    public const string GlobalAfterGroupClipLabel = "global_after_group_clip";

    private readonly Parameter[][] _groupParameters;
    private readonly Tensor _groupLimits;   // (G) float32, outside any dispose scope
    private readonly Scalar _epsilon;
    private readonly Scalar _one;
    private bool _disposed;

    /// <summary>Classifies <paramref name="parameters"/> into the groups of <paramref name="options"/>.</summary>
    /// <param name="parameters">Named parameters, e.g. <c>module.named_parameters()</c>; a parameter listed twice (tied) counts once, in its first name's group.</param>
    /// <param name="options">The groups and max norms.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public GroupedGradientClipper(IEnumerable<(string name, Parameter parameter)> parameters, GradientClipOptions options)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid();

        string[] names = [.. options.Groups.Select(g => g.Name), ParameterNamePatterns.OtherGroup];
        double[] limits = [.. options.Groups.Select(g => g.MaxNorm), options.OtherMaxNorm];
        var members = names.Select(_ => new List<(string Name, Parameter Parameter)>()).ToArray();
        var seen = new HashSet<IntPtr>();
        foreach ((string name, Parameter p) in parameters)
        {
            if (!seen.Add(p.Handle)) continue;
            int group = options.Groups.FindIndex(g => ParameterNamePatterns.MatchesAny(name, g.NameContains));
            members[group < 0 ? names.Length - 1 : group].Add((name, p));
        }

        GroupNames = names;
        GroupMaxNorms = limits;
        ParameterNamesByGroup = names.Select((n, i) => (n, i))
            .ToDictionary(t => t.n, t => (IReadOnlyList<string>)members[t.i].Select(m => m.Name).ToArray(), StringComparer.Ordinal);
        NormLabels = [GlobalLabel, .. names, GlobalAfterGroupClipLabel];
        _groupParameters = members.Select(m => m.Select(x => x.Parameter).ToArray()).ToArray();
        Device device = _groupParameters.SelectMany(p => p).FirstOrDefault()?.device ?? CPU;
        _groupLimits = tensor(limits.Select(l => (float)l).ToArray(), ScalarType.Float32, device).DetachFromDisposeScope();
        _epsilon = NormEpsilon.ToScalar();
        _one = 1.0.ToScalar();
    }

    /// <summary>The group names, in the order of entries 1..G of <see cref="ClipGradients"/>'s result; the last is <see cref="ParameterNamePatterns.OtherGroup"/>.</summary>
    public IReadOnlyList<string> GroupNames { get; }

    /// <summary>Each group's max norm, in <see cref="GroupNames"/> order.</summary>
    public IReadOnlyList<double> GroupMaxNorms { get; }

    /// <summary>The parameter names of each group, for logging.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> ParameterNamesByGroup { get; }

    /// <summary>Labels of the entries of <see cref="ClipGradients"/>'s result: global, each group, global after the group clips.</summary>
    public IReadOnlyList<string> NormLabels { get; }

    /// <summary>
    /// Clips every gradient in place: each group to its own max norm, then everything to <paramref name="globalMaxNorm"/>.
    /// </summary>
    /// <param name="globalMaxNorm">The global max norm for this step; &gt; 0 (+infinity disables the global clip).</param>
    /// <returns>
    /// The pre-clip norms as one float32 tensor of length G + 2 (labels in <see cref="NormLabels"/>): [0] the global norm
    /// of the raw gradients, [1..G] each group's raw norm, [G + 1] the global norm after the group clips (what the
    /// global clip compared with <paramref name="globalMaxNorm"/>). Owned by the caller; read it (a host sync) only when logging.
    /// </returns>
    /// <exception cref="ArgumentException"><paramref name="globalMaxNorm"/> is not positive (or NaN).</exception>
    public Tensor ClipGradients(double globalMaxNorm)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!(globalMaxNorm > 0))
            throw new ArgumentException($"globalMaxNorm = {globalMaxNorm} is invalid; allowed: > 0 (+infinity disables).", nameof(globalMaxNorm));

        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using Scalar globalLimit = globalMaxNorm.ToScalar();
        int groupCount = _groupParameters.Length;
        var grads = new List<Tensor>[groupCount];
        var groupNorms = new Tensor[groupCount];
        for (int g = 0; g < groupCount; g++)
        {
            grads[g] = new List<Tensor>(_groupParameters[g].Length);
            var norms = new List<Tensor>(_groupParameters[g].Length);
            foreach (Parameter p in _groupParameters[g])
            {
                Tensor? grad = p.grad;                                    // a new wrapper, disposed with the scope
                if (grad is null) continue;
                grads[g].Add(grad);
                Tensor norm = linalg.vector_norm(grad);                   // ()
                norms.Add(norm.dtype == ScalarType.Float32 ? norm : norm.to(ScalarType.Float32));
            }

            groupNorms[g] = norms.Count switch
            {
                0 => zeros(Array.Empty<long>(), ScalarType.Float32, _groupLimits.device),
                1 => norms[0],
                _ => linalg.vector_norm(stack(norms)),                   // ()
            };
        }

        Tensor raw = stack(groupNorms);                                   // (G)
        Tensor groupCoef = _groupLimits.div(raw.add(_epsilon)).clamp_max_(_one);      // (G)
        Tensor afterGroups = linalg.vector_norm(raw.mul(groupCoef));                  // ()
        Tensor globalCoef = afterGroups.add(_epsilon).reciprocal_().mul_(globalLimit).clamp_max_(_one); // ()
        Tensor[] coef = groupCoef.mul(globalCoef).unbind(0);                          // G x ()
        for (int g = 0; g < groupCount; g++)
        {
            foreach (Tensor grad in grads[g])
            {
                _ = grad.dtype == ScalarType.Float32 ? grad.mul_(coef[g]) : grad.mul_(coef[g].to(grad.dtype));
            }
        }

        Tensor global = linalg.vector_norm(raw);                          // ()
        return stack([global, .. groupNorms, afterGroups]).MoveToOuterDisposeScope(); // (G + 2)
    }

    /// <summary>Frees the cached limits tensor and scalars.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _groupLimits.Dispose();
        _epsilon.Dispose();
        _one.Dispose();
    }
}
