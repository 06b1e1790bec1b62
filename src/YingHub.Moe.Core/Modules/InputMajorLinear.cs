using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Precision;
using YingHub.Moe.Core.Quantization;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// A Linear layer (x (..., in) → (..., out)) whose weight is stored input-major, (in, out), as GPT-2's Conv1D and the
/// library's stacked FFN weights (<see cref="StackedLinear"/>): <c>y = x @ W + b</c>. <c>nn.functional.linear</c> over the
/// (out, in) view <c>Wᵀ</c> hands BLAS the contiguous (in, out) matrix untransposed, which streams the weight about
/// 1.5× faster when decoding one token (docs/benchmarks.md). Same parameter names as <c>nn.Linear</c>. Once quantized
/// (<see cref="IQuantizableLayer"/>) the weight is dequantized on every forward and the float Parameter is gone.
/// </summary>
internal sealed class InputMajorLinear : nn.Module<Tensor, Tensor>, ILinearLayer, IQuantizableLayer
{
    [ComponentName(Name = "weight")] private Parameter? _weight;         // (in, out); null once quantized
    private QuantizedWeight? _quantized;                                  // (in, out) quantized, registered as quantized_weight
    [ComponentName(Name = "bias")] private readonly Parameter? _bias;    // (out)
    private readonly InferenceViews _transposed = new(w => [w.t()]); // Wᵀ (out, in), for decoding

    public InputMajorLinear(int inFeatures, int outFeatures, bool bias, MoeModelOptions options, bool residual = false)
        : base(nameof(InputMajorLinear))
    {
        (InFeatures, OutFeatures) = (inFeatures, outFeatures);
        _weight = Owned.Parameter(torch.empty(inFeatures, outFeatures));
        using (var asLinear = _weight.detach().t()) WeightInit.Weight(asLinear, options, residual); // the (out, in) view: a Linear's fans
        if (bias)
        {
            _bias = Owned.Parameter(torch.zeros(outFeatures));
            WeightInit.Bias(_bias, inFeatures, options);
        }

        RegisterComponents();
    }

    /// <inheritdoc />
    public Parameter Weight => _weight ?? throw QuantizedLayers.NoFloatWeight(this);

    /// <inheritdoc />
    public int InFeatures { get; }

    /// <inheritdoc />
    public int OutFeatures { get; }

    /// <inheritdoc />
    public bool InputMajor => true;

    /// <inheritdoc />
    public QuantizationKind? Quantization => _quantized?.Kind;

    /// <inheritdoc />
    public Tensor StoredWeight => (Tensor?)_weight ?? _quantized!.Codes;

    /// <inheritdoc />
    public QuantizedWeight? Quantized => _quantized;

    /// <inheritdoc />
    public long WeightElements => (long)InFeatures * OutFeatures;

    /// <inheritdoc />
    public void Quantize(QuantizationKind kind, int blockSize)
    {
        if (_weight is null) throw QuantizedLayers.QuantizedAlready(this);
        _quantized = QuantizedWeight.Replace(this, _weight, kind, blockSize, () => ConditionallyRegisterParameter("weight", (Parameter?)null));
        _weight = null;
        _transposed.Dispose();
    }

    public override Tensor forward(Tensor x) // (..., in) -> (..., out)
    {
        if (_quantized is null) return Autocast.Linear(x, WeightT(), _bias);
        using var scope = torch.NewDisposeScope();
        return Autocast.Linear(x, _quantized.Dequantize().t(), _bias).MoveToOuterDisposeScope(); // dequantized (in, out), used as Wᵀ (out, in)
    }

    /// <summary>Wᵀ (out, in) as a view: in training a fresh autograd view per call, in inference the one kept view.</summary>
    private Tensor WeightT() => InferenceViews.Active ? _transposed.Of(_weight)![0] : _weight!.t();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _transposed.Dispose();
        base.Dispose(disposing);
    }
}
