using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Adapters;

/// <summary>What one target's gate decided in its last training-mode forward, owned by the layer.</summary>
/// <param name="Probs">The softmax over all experts of the (noisy) gate logits (N, n), fp32.</param>
/// <param name="Indices">The picked experts (N, k), int64, best first.</param>
internal sealed record GateRecord(Tensor Probs, Tensor Indices) : IDisposable
{
    public void Dispose()
    {
        Probs.Dispose();
        Indices.Dispose();
    }
}

/// <summary>
/// One target of a <see cref="LoraMixture"/>: n LoRA experts (<c>experts.{i}.lora_A</c>, <c>experts.{i}.lora_B</c>)
/// and a gate on the target's input whose row i is <c>gate.{i}</c> (a Linear in -> 1; the rows together are the gate,
/// a Linear in -> n, fp32), plus <c>gate_noise.{i}</c> rows when the gate is noisy. Each expert keeps its own gate rows,
/// so freezing an expert freezes its rows too.
/// </summary>
internal sealed class LoraMixtureLayer : nn.Module
{
    private readonly Indexed _experts = new();
    private readonly Indexed _gate = new();
    private readonly Indexed? _noise;
    private readonly List<LoraLayer> _expertList = [];
    private readonly List<Linear> _gateRows = [], _noiseRows = [];
    private readonly LoraOptions _lora;

    public LoraMixtureLayer(LoraTarget target, LoraOptions lora, int experts, bool noisy) : base(nameof(LoraMixtureLayer))
    {
        Target = target;
        _lora = lora;
        register_module("experts", _experts);
        register_module("gate", _gate);
        if (noisy)
        {
            _noise = new Indexed();
            register_module("gate_noise", _noise);
        }

        for (int i = 0; i < experts; i++) AddExpert();
    }

    /// <summary>The adapted layer.</summary>
    public LoraTarget Target { get; }

    /// <summary>The experts, in order.</summary>
    public IReadOnlyList<LoraLayer> Experts => _expertList;

    /// <summary>The gate decision of the last training-mode forward, or null (owned by the layer).</summary>
    public GateRecord? Record { get; private set; }

    /// <summary>
    /// Adds an expert: A Kaiming-uniform, B zeros (so the output does not change), a gate row (and a noise row) as
    /// <c>nn.Linear</c> initialises them.
    /// </summary>
    public void AddExpert()
    {
        var device = Target.Weight.device;
        var expert = new LoraLayer(Target, _lora.Rank, _lora.Scale, _lora.Dropout);
        var row = nn.Linear(Target.InFeatures, 1, hasBias: false, device: device);
        _experts.Add(expert);
        _expertList.Add(expert);
        _gate.Add(row);
        _gateRows.Add(row);
        if (_noise is null) return;
        var noiseRow = nn.Linear(Target.InFeatures, 1, hasBias: false, device: device);
        _noise.Add(noiseRow);
        _noiseRows.Add(noiseRow);
    }

    /// <summary>Sets <c>requires_grad</c> of expert <paramref name="expert"/>'s factors and gate rows.</summary>
    public void SetTrainable(int expert, bool trainable)
    {
        foreach (var p in _experts[expert].parameters().Concat(_gateRows[expert].parameters()).Concat(_noise is null ? [] : _noiseRows[expert].parameters()))
            p.requires_grad = trainable;
    }

    /// <summary>
    /// The gate for tokens x (N, in): the picked experts (N, k), their weights (N, k) (a softmax over the k picked
    /// logits) and the softmax over all n logits (N, n), all fp32 but the int64 indices. In training a noisy gate adds
    /// <c>N(0, 1) · softplus(x W_noiseᵀ)</c> to the logits first.
    /// </summary>
    public (Tensor Indices, Tensor Weights, Tensor Probs) Route(Tensor x, int topK, bool training)
    {
        using var scope = torch.NewDisposeScope();
        var h = x.dtype == ScalarType.Float32 ? x : x.to(ScalarType.Float32);                     // (N, in)
        var logits = nn.functional.linear(h, Rows(_gateRows));                                     // (N, n)
        if (training && _noise is not null)
            logits = logits + torch.randn_like(logits) * nn.functional.softplus(nn.functional.linear(h, Rows(_noiseRows))); // (N, n)
        var (top, indices) = logits.topk(topK, dim: -1);                                          // (N, k), (N, k)
        var weights = top.softmax(-1);                                                             // (N, k): renormalised over the picked
        var probs = logits.softmax(-1);                                                            // (N, n)
        return (indices.MoveToOuterDisposeScope(), weights.MoveToOuterDisposeScope(), probs.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The adapted output <c>y + Σ_i g_i(x) · scale · dropout(x) A_iᵀ B_iᵀ</c> of the target's input x (..., in) and
    /// output y (..., out), g_i the gate weight of expert i (0 unless picked). In training mode the gate's decision is
    /// kept (<see cref="Record"/>) for the balance loss.
    /// </summary>
    public Tensor Apply(Tensor x, Tensor y, int topK, bool training)
    {
        using var scope = torch.NewDisposeScope();
        long n = _expertList.Count;
        var (indices, weights, probs) = Route(x.reshape(-1, Target.InFeatures), topK, training); // (N, k), (N, k), (N, n)
        var gates = torch.zeros_like(probs).scatter(1, indices, weights) * _lora.Scale;          // (N, n): g_i · scale
        if (gates.dtype != y.dtype) gates = gates.to(y.dtype);
        long[] column = [.. y.shape[..^1], 1];                                                    // (..., 1)
        var result = y;
        for (int i = 0; i < n; i++)
        {
            var update = _expertList[i].Update(x, training, y.dtype);                              // (..., out)
            result = result + update * gates[.., i].reshape(column);                               // (..., out)
        }

        if (training)
        {
            Record?.Dispose();
            Record = new GateRecord(probs.DetachFromDisposeScope(), indices.DetachFromDisposeScope());
        }

        return result.MoveToOuterDisposeScope();
    }

    /// <summary>Releases <see cref="Record"/>.</summary>
    public void ClearRecord()
    {
        Record?.Dispose();
        Record = null;
    }

    /// <summary>The gate matrix (n, in) from its rows.</summary>
    private static Tensor Rows(List<Linear> rows) => rows.Count == 1 ? rows[0].weight! : torch.cat(rows.Select(r => (Tensor)r.weight!).ToArray(), 0);

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) ClearRecord();
        base.Dispose(disposing);
    }

    /// <summary>A parameter-free container of modules named <c>0</c>, <c>1</c>, ... in the order added.</summary>
    private sealed class Indexed : nn.Module
    {
        private readonly List<nn.Module> _items = [];

        public Indexed() : base(nameof(Indexed)) => RegisterComponents();

        public nn.Module this[int index] => _items[index];

        public void Add(nn.Module module)
        {
            register_module(_items.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), module);
            _items.Add(module);
        }
    }
}
