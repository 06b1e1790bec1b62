using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Core.Precision;
using YingHub.Moe.Core.Quantization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// n Linear layers of the same shape stored as one (n, in, out) weight and one (n, out) bias, so a bank of experts is a
/// few large parameters (cheap for the optimiser) and each expert's weights are views. Input-major, as Hugging Face's
/// fused expert weights (<c>gate_up_proj</c> (E, hidden, 2·inter)) and GPT-2's Conv1D: <c>y = x @ W + b</c>. Decoding
/// one token reads every chosen weight once from memory, and the input-major product streams it about 1.5× faster on
/// CPU than <c>x @ Wᵀ</c> over an (out, in) weight (docs/benchmarks.md). Once quantized (<see cref="IQuantizableLayer"/>)
/// the float Parameter is gone: the whole stack is dequantized per forward over many tokens, and only the chosen
/// layer's blocks when one layer runs (<see cref="Forward"/>, <see cref="Layer"/>: decoding).
/// </summary>
internal sealed class StackedLinear : nn.Module, IQuantizableLayer
{
    [ComponentName(Name = "weight")] private Parameter? _weight;         // (n, in, out); null once quantized
    private QuantizedWeight? _quantized;                                  // (n, in, out) quantized, registered as quantized_weight
    [ComponentName(Name = "bias")] private readonly Parameter? _bias;    // (n, out)
    private readonly InferenceViews _weightViews = new(w => w.unbind(0)); // n × (in, out), for decoding
    private readonly InferenceViews _biasViews = new(b => b.unbind(0));   // n × (out)

    public StackedLinear(int count, int inFeatures, int outFeatures, bool bias, MoeModelOptions options, bool residual = false)
        : base(nameof(StackedLinear))
    {
        WeightElements = (long)count * inFeatures * outFeatures;
        _weight = Owned.Parameter(torch.empty(count, inFeatures, outFeatures));
        using (var asLinear = _weight.detach().transpose(1, 2)) WeightInit.Weight(asLinear, options, residual); // (n, out, in) views: the fans of a Linear
        if (bias)
        {
            _bias = Owned.Parameter(torch.zeros(count, outFeatures));
            WeightInit.Bias(_bias, inFeatures, options);
        }

        RegisterComponents();
    }

    /// <inheritdoc />
    public QuantizedWeight? Quantized => _quantized;

    /// <inheritdoc />
    public long WeightElements { get; }

    /// <inheritdoc />
    public void Quantize(QuantizationKind kind, int blockSize)
    {
        if (_weight is null) throw QuantizedLayers.QuantizedAlready(this);
        _quantized = QuantizedWeight.Replace(this, _weight, kind, blockSize, () => ConditionallyRegisterParameter("weight", (Parameter?)null));
        _weight = null;
        _weightViews.Dispose();
    }

    /// <summary>
    /// The n layers' weights (in, out) and biases (out) as views, from one <c>unbind</c> each (apply them with
    /// <see cref="Autocast.MatMul"/>): their gradients flow back through one stack, where indexing layer by layer would
    /// allocate a full (n, in, out) gradient per layer.
    /// </summary>
    public (Tensor[] Weights, Tensor[]? Biases) Unbind() =>
        KeptViews() ?? (Autocast.CastFloat(_weight ?? _quantized!.Dequantize()).unbind(0), _bias is null ? null : Autocast.CastFloat(_bias).unbind(0));

    /// <summary>Linear layer <paramref name="index"/> applied to x (N, in) → (N, out).</summary>
    public Tensor Forward(int index, Tensor x)
    {
        if (KeptViews() is var (w, b))
            return Autocast.MatMul(x, w[index], b?[index]); // one op: no per-call slicing of the stacked weight (decoding)
        using var scope = torch.NewDisposeScope();
        var y = Autocast.MatMul(x, _weight?[index] ?? _quantized!.Dequantize(index), _bias?[index]); // weight (in, out)
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Layer <paramref name="index"/>'s kept weight (in, out) and bias views; inference only (<see cref="InferenceViews.Active"/>).
    /// Quantized, the weight is that layer's dequantized copy, owned by the caller's dispose scope.
    /// </summary>
    public ExpertLayer Layer(int index)
    {
        if (!InferenceViews.Active) throw new InvalidOperationException("The kept views are for inference (no autograd, no autocast).");
        if (_quantized is not null) return new ExpertLayer(_quantized.Dequantize(index), _biasViews.Of(_bias)?[index]);
        var (w, b) = KeptViews()!.Value;
        return new ExpertLayer(w[index], b?[index]);
    }

    /// <summary>In inference (<see cref="InferenceViews.Active"/>) of a float stack, the kept per-layer views of the weight and bias; otherwise null.</summary>
    private (Tensor[] Weights, Tensor[]? Biases)? KeptViews() =>
        InferenceViews.Active && _weight is not null ? (_weightViews.Of(_weight)!, _biasViews.Of(_bias)) : null;

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _weightViews.Dispose();
            _biasViews.Dispose();
        }

        base.Dispose(disposing);
    }
}
