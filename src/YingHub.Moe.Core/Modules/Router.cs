using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// What a router decides for N tokens. All tensors belong to the receiver.
/// </summary>
/// <param name="Logits">Raw router logits (N, E), fp32, before any noise (for the z-loss).</param>
/// <param name="Probs">Softmax over all experts of the logits used for routing (N, E), fp32 (for load balancing).</param>
/// <param name="Weights">Gate weights of the selected experts (N, k): a softmax over the k selected logits.</param>
/// <param name="Indices">Selected experts (N, k), int64, best first.</param>
public sealed record RouterOutput(Tensor Logits, Tensor Probs, Tensor Weights, Tensor Indices) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        Logits.Dispose();
        Probs.Dispose();
        Weights.Dispose();
        Indices.Dispose();
    }
}

/// <summary>
/// Top-k router (<see cref="RouterKind.TopK"/>) with optional noise (<see cref="RouterKind.NoisyTopK"/>): in training,
/// <c>N(0,1) * softplus(W_noise x) * τ</c> is added to the logits, τ a learnable temperature clamped to
/// [<see cref="MoeModelOptions.NoiseTemperatureMin"/>, <see cref="MoeModelOptions.NoiseTemperatureMax"/>].
/// </summary>
internal sealed class Router : nn.Module<Tensor, RouterOutput>
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight;                   // (E, C)
    [ComponentName(Name = "bias")] private readonly Parameter? _bias;                      // (E)
    [ComponentName(Name = "noise")] private readonly nn.Module<Tensor, Tensor>? _noise;    // C -> E
    [ComponentName(Name = "noise_temperature")] private readonly Parameter? _temperature; // ()
    private readonly int _experts;
    private readonly double _tMin, _tMax;
    private readonly bool _normalize;
    private int _topK;

    public Router(MoeModelOptions options) : base(nameof(Router))
    {
        _experts = options.NumExperts;
        _topK = options.TopK;
        _normalize = options.NormalizeTopKWeights;
        _weight = Owned.Parameter(torch.empty(options.NumExperts, options.HiddenSize));
        WeightInit.Weight(_weight, options);
        if (options.Bias)
        {
            _bias = Owned.Parameter(torch.zeros(options.NumExperts));
            WeightInit.Bias(_bias, options.HiddenSize, options);
        }

        if (options.Router == RouterKind.NoisyTopK)
        {
            _noise = nn.Linear(options.HiddenSize, options.NumExperts, hasBias: options.Bias);
            WeightInit.Linear(_noise, options);
            // start inside the clamp range: outside it the clamp has no gradient and the temperature would never move
            _temperature = Owned.Parameter(torch.tensor((float)Math.Clamp(1.0, options.NoiseTemperatureMin, options.NoiseTemperatureMax)));
            _tMin = options.NoiseTemperatureMin;
            _tMax = options.NoiseTemperatureMax;
        }

        RegisterComponents();
    }

    /// <summary>Experts per token, changeable at run time within [1, E].</summary>
    public int TopK
    {
        get => _topK;
        set
        {
            if (value < 1 || value > _experts)
                throw new ArgumentOutOfRangeException(nameof(value), value, $"TopK must be in [1, {_experts}].");
            _topK = value;
        }
    }

    public override RouterOutput forward(Tensor x) => Forward(x, forcedExperts: null); // (N, C)

    /// <summary>
    /// Routes x (N, C). With <paramref name="forcedExperts"/> (N, k) int64 (routing replay) the choice is given: no noise
    /// and no top-k selection, and the gate weights come from the current logits at the forced experts exactly as the
    /// normal path computes them for its chosen experts (a softmax over those k logits, or the full softmax gathered
    /// there when top-k weights are not renormalised), so the router still gets gradients. The caller validates the
    /// forced experts (shape, dtype, range, device). Called directly, not through <c>call</c>, so hooks do not fire.
    /// </summary>
    public RouterOutput Forward(Tensor x, Tensor? forcedExperts) // x: (N, C); forcedExperts: (N, k) or null
    {
        using var scope = torch.NewDisposeScope();
        var logits = nn.functional.linear(x, _weight, _bias);                        // (N, E)
        if (logits.dtype != ScalarType.Float32) logits = logits.to(ScalarType.Float32);
        var routing = logits;
        if (training && _noise is not null && forcedExperts is null)
        {
            var scale = nn.functional.softplus(_noise.call(x)).to(ScalarType.Float32) * _temperature!.clamp(_tMin, _tMax); // (N, E)
            routing = logits + torch.randn_like(logits) * scale;
        }

        // forced: the logits at the given experts play the part of the top-k values (bit-identical when they are the same experts)
        var (top, indices) = forcedExperts is null ? routing.topk(_topK, dim: -1) : (routing.gather(1, forcedExperts), forcedExperts.alias()); // (N, k), (N, k)
        var probs = routing.softmax(-1);                              // (N, E)
        var weights = _normalize ? top.softmax(-1) : probs.gather(1, indices); // (N, k)
        if (weights.dtype != x.dtype) weights = weights.to(x.dtype);
        return new RouterOutput(logits.MoveToOuterDisposeScope(), probs.MoveToOuterDisposeScope(),
            weights.MoveToOuterDisposeScope(), indices.MoveToOuterDisposeScope());
    }
}
