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
internal sealed class InputMajorLinear : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight; // (in, out)
    [ComponentName(Name = "bias")] private readonly Parameter? _bias;    // (out)
    private Tensor? _inferenceView;   // detached Wᵀ for inference, see WeightT
    private object? _viewOf;
    private IntPtr _viewHandle;

    public InputMajorLinear(int inFeatures, int outFeatures, bool bias, MoeModelOptions options, double residualScale = 1.0)
        : base(nameof(InputMajorLinear))
    {
        _weight = Owned.Parameter(torch.empty(inFeatures, outFeatures));
        using (var asLinear = _weight.detach().t()) WeightInit.Weight(asLinear, options, residualScale); // the (out, in) view: a Linear's fans
        if (bias) _bias = Owned.Parameter(torch.zeros(outFeatures));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => Autocast.Linear(x, WeightT(), _bias); // (..., in) -> (..., out)

    /// <summary>
    /// Wᵀ (out, in) as a view. In training a fresh view per call (an autograd view of the parameter); under
    /// <c>no_grad</c> without autocast (decoding) one detached view, made once and kept: it shares the parameter's
    /// storage, so in-place updates show through, and is rebuilt when the parameter object is replaced.
    /// </summary>
    private Tensor WeightT()
    {
        if (torch.is_grad_enabled() || Autocast.CurrentType is not null) return _weight.t();
        if (!ReferenceEquals(_viewOf, _weight) || _viewHandle != _weight.Handle || _inferenceView is null)
        {
            _inferenceView?.Dispose();
            using (torch.no_grad()) _inferenceView = _weight.detach().t().DetachFromDisposeScope();
            (_viewOf, _viewHandle) = (_weight, _weight.Handle);
        }

        return _inferenceView;
    }

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _inferenceView?.Dispose();
        base.Dispose(disposing);
    }
}
