using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Precision;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// A Linear layer (x (..., in) → (..., out)) whose weight is stored input-major, (in, out), as GPT-2's Conv1D and the
/// library's stacked FFN weights (<see cref="StackedLinear"/>): <c>y = x @ W + b</c>. <c>nn.functional.linear</c> over the
/// (out, in) view <c>Wᵀ</c> hands BLAS the contiguous (in, out) matrix untransposed, which streams the weight about
/// 1.5× faster when decoding one token (docs/benchmarks.md). Same parameter names as <c>nn.Linear</c>.
/// </summary>
internal sealed class InputMajorLinear : nn.Module<Tensor, Tensor>, ILinearLayer
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight; // (in, out)
    [ComponentName(Name = "bias")] private readonly Parameter? _bias;    // (out)
    private readonly InferenceViews _transposed = new(w => [w.t()]); // Wᵀ (out, in), for decoding

    public InputMajorLinear(int inFeatures, int outFeatures, bool bias, MoeModelOptions options, bool residual = false)
        : base(nameof(InputMajorLinear))
    {
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
    public Parameter Weight => _weight;

    /// <inheritdoc />
    public int InFeatures => (int)_weight.size(0);

    /// <inheritdoc />
    public int OutFeatures => (int)_weight.size(1);

    /// <inheritdoc />
    public bool InputMajor => true;

    public override Tensor forward(Tensor x) => Autocast.Linear(x, WeightT(), _bias); // (..., in) -> (..., out)

    /// <summary>Wᵀ (out, in) as a view: in training a fresh autograd view per call, in inference the one kept view.</summary>
    private Tensor WeightT() => InferenceViews.Active ? _transposed.Of(_weight)![0] : _weight.t();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _transposed.Dispose();
        base.Dispose(disposing);
    }
}
