using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// A dense feed-forward block (Linear C→H, activation, Linear H→C, dropout) with H =
/// <see cref="MoeModelOptions.DenseMultiplier"/> × C: the FFN of non-MoE layers and the shared expert.
/// </summary>
internal sealed class DenseFeedForward : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "ffn")] private readonly ExpertBank _bank; // one expert, so dense and expert FFNs share one implementation
    private readonly double _dropout;

    public DenseFeedForward(MoeModelOptions options) : base(nameof(DenseFeedForward))
    {
        var dense = options.Clone();
        dense.ExpertMultiplier = options.DenseMultiplier;
        dense.IntermediateSize = null; // the experts' width, not the dense layers'
        _bank = new ExpertBank(1, deep: false, dense);
        _dropout = options.Dropout;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) // (..., C)
    {
        using var scope = torch.NewDisposeScope();
        var shape = x.shape;
        var y = _bank.Forward(0, x.reshape(-1, shape[^1])).reshape(shape); // (..., C)
        return Regularization.Dropout(y, _dropout, training).MoveToOuterDisposeScope();
    }
}
