using TorchSharp.Modules;
using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Optimization;

/// <summary>
/// A TorchSharp <see cref="AdamW"/> with parameter groups, and the description of those groups. Weight decay applies
/// only to weight matrices (dim ≥ 2, stacked expert weights included) that are not embeddings or norms; biases (named
/// <c>….bias</c>, whatever their shape: stacked biases are (count, out), see <see cref="ParameterNamePatterns.IsBias"/>),
/// norm weights, scalars and embeddings get none. Router
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

    /// <summary>The optimizer (a <see cref="FusedAdamW"/> when <see cref="AdamWGroupOptions.Fused"/> and the kernel is available); owned by this object.</summary>
    public AdamW Optimizer { get; }

    /// <summary>Whether <see cref="Optimizer"/> runs the fused kernel.</summary>
    public bool IsFused => Optimizer is FusedAdamW;

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
        options.ThrowIfInvalid();

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

        // built-in groups first, then each rule's pair, in the rules' order; empty groups are left out
        var groups = new List<(string Name, double Multiplier, bool Decay)>
        {
            (DecayGroup, 1.0, true), (NoDecayGroup, 1.0, false),
            (RouterDecayGroup, options.RouterLearningRateMultiplier, true), (RouterNoDecayGroup, options.RouterLearningRateMultiplier, false),
        };
        foreach (var rule in options.LearningRateGroups)
            groups.AddRange([($"{rule.Name}_{DecayGroup}", rule.LearningRateMultiplier, true), ($"{rule.Name}_{NoDecayGroup}", rule.LearningRateMultiplier, false)]);
        var members = groups.ToDictionary(g => g.Name, _ => new List<(string Name, Parameter P)>(), StringComparer.Ordinal);
        foreach (IntPtr handle in order)
        {
            (Parameter p, List<string> names) = byHandle[handle];
            var rule = options.LearningRateGroups.FirstOrDefault(r => names.Any(n => ParameterNamePatterns.MatchesAny(n, r.NameContains)));
            bool router = names.Any(n => ParameterNamePatterns.MatchesAny(n, options.RouterNameContains));
            bool decay = p.dim() >= MatrixRank
                && !names.Any(n => ParameterNamePatterns.IsBias(n) || ParameterNamePatterns.MatchesAny(n, options.NoDecayNameContains));
            string group = (rule, router, decay) switch
            {
                ({ } r, _, true) => $"{r.Name}_{DecayGroup}",
                ({ } r, _, false) => $"{r.Name}_{NoDecayGroup}",
                (null, false, true) => DecayGroup,
                (null, false, false) => NoDecayGroup,
                (null, true, true) => RouterDecayGroup,
                (null, true, false) => RouterNoDecayGroup,
            };
            members[group].Add((names[0], p));
        }

        var infos = new List<ParameterGroupInfo>();
        var paramGroups = new List<AdamW.ParamGroup>();
        foreach (var (name, multiplier, decayed) in groups.Where(g => members[g.Name].Count > 0))
        {
            double decay = decayed ? options.WeightDecay : 0.0;
            List<(string Name, Parameter P)> list = members[name];
            infos.Add(new ParameterGroupInfo(name, decay, multiplier, list.Select(m => m.Name).ToArray(), list.Sum(m => m.P.numel())));
            paramGroups.Add(new AdamW.ParamGroup(list.Select(m => m.P).ToArray(),
                lr: options.LearningRate * multiplier, beta1: options.Beta1, beta2: options.Beta2, eps: options.Epsilon, weight_decay: decay));
        }

        var optimizer = options.Fused && FusedAdamW.IsSupported
            ? new FusedAdamW(paramGroups, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay)
            : new AdamW(paramGroups, options.LearningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
        return new GroupedAdamW(optimizer, infos);
    }

    /// <summary>
    /// Writes the optimizer state in TorchSharp's <c>save_state_dict</c> format (streamed to the file), labelled with the
    /// optimizer's type; <see cref="LoadState"/> reads either label, so a state file loads into either implementation.
    /// </summary>
    public void SaveState(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        Optimizer.save_state_dict(path);
    }

    /// <summary>Loads a state written by <see cref="SaveState"/> (or by <c>save_state_dict</c> of an <see cref="AdamW"/> or <see cref="FusedAdamW"/> over the same groups).</summary>
    /// <exception cref="InvalidDataException">The file is not an optimizer state, or holds another optimizer's state.</exception>
    public void LoadState(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var file = File.OpenRead(path);
        string label;
        try
        {
            label = new BinaryReader(file).ReadString(); // not disposed: it would close the file
        }
        catch (Exception ex) when (ex is EndOfStreamException or FormatException or IOException)
        {
            throw new InvalidDataException($"'{path}' is not an optimizer state file: {ex.Message}", ex);
        }

        if (label is not (nameof(AdamW) or nameof(FusedAdamW)))
            throw new InvalidDataException($"'{path}' holds the state of a '{label}' optimizer, not AdamW.");
        var prefix = new MemoryStream();
        using (var writer = new BinaryWriter(prefix, System.Text.Encoding.UTF8, leaveOpen: true)) writer.Write(Optimizer.GetType().Name);
        prefix.Position = 0;
        using var relabelled = new BinaryReader(new ConcatenatedStream(prefix, file)); // the rest streams from the file
        Optimizer.load_state_dict(relabelled);
    }

    /// <summary>A read-only stream that reads one stream to its end, then another.</summary>
    private sealed class ConcatenatedStream(Stream first, Stream second) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int read = first.Read(buffer, offset, count);
            return read > 0 ? read : second.Read(buffer, offset, count);
        }

        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) first.Dispose(); // the second belongs to the caller
            base.Dispose(disposing);
        }
    }

    /// <summary>A multi-line description of the groups (name, decay, LR multiplier, counts), for the training log.</summary>
    public string Describe() => string.Join(Environment.NewLine, Groups.Select(g =>
        FormattableString.Invariant(
            $"{g.Name}: weight_decay={g.WeightDecay}, lr_multiplier={g.LearningRateMultiplier}, tensors={g.ParameterNames.Count}, elements={g.ElementCount}")));

    /// <summary>Disposes the optimizer and its state.</summary>
    public void Dispose() => Optimizer.Dispose();
}
