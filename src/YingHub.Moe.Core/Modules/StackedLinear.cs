using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Precision;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// n Linear layers of the same shape stored as one (n, out, in) weight and one (n, out) bias, so a bank of experts is a
/// few large parameters (cheap for the optimiser) and each expert's weights are views.
/// </summary>
internal sealed class StackedLinear : nn.Module
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight; // (n, out, in)
    [ComponentName(Name = "bias")] private readonly Parameter? _bias;    // (n, out)

    public StackedLinear(int count, int inFeatures, int outFeatures, bool bias, MoeModelOptions options, double residualScale = 1.0)
        : base(nameof(StackedLinear))
    {
        _weight = Owned.Parameter(torch.empty(count, outFeatures, inFeatures));
        WeightInit.Weight(_weight, options, residualScale);
        if (bias) _bias = Owned.Parameter(torch.zeros(count, outFeatures));
        RegisterComponents();
    }

    /// <summary>
    /// The n layers' weights (out, in) and biases (out) as views, from one <c>unbind</c> each: their gradients flow
    /// back through one stack, where indexing layer by layer would allocate a full (n, out, in) gradient per layer.
    /// </summary>
    public (Tensor[] Weights, Tensor[]? Biases) Unbind() => (Autocast.CastFloat(_weight).unbind(0), _bias is null ? null : Autocast.CastFloat(_bias).unbind(0));

    /// <summary>Linear layer <paramref name="index"/> applied to x (N, in) → (N, out).</summary>
    public Tensor Forward(int index, Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var y = Autocast.Linear(x, _weight[index], _bias?[index]);
        return y.MoveToOuterDisposeScope();
    }
}
