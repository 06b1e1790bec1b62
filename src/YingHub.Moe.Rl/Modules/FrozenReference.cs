using TorchSharp;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Modules;

/// <summary>
/// The reference policy of RLHF: a frozen copy of the starting policy (no gradients, evaluation mode, never updated), for
/// the KL penalty. Its memory is <see cref="ParameterBytes"/> (a second copy of the weights; no optimizer state).
/// </summary>
public sealed class FrozenReference : IDisposable
{
    private FrozenReference(MoeForCausalLM model)
    {
        Model = model;
        ParameterBytes = model.parameters().Sum(p => p.numel() * p.element_size());
    }

    /// <summary>The frozen model.</summary>
    public MoeForCausalLM Model { get; }

    /// <summary>Bytes held by the reference's parameters.</summary>
    public long ParameterBytes { get; }

    /// <summary>A copy of <paramref name="policy"/>'s current weights, on its device, frozen.</summary>
    public static FrozenReference CopyOf(MoeForCausalLM policy)
    {
        var copy = Clone(policy);
        foreach (var p in copy.parameters()) p.requires_grad = false;
        copy.eval();
        return new FrozenReference(copy);
    }

    /// <summary>
    /// A new model with <paramref name="model"/>'s options and a copy of its current weights and buffers, on its device and
    /// in its dtype, trainable like any new model (e.g. a separate critic that starts from the policy).
    /// </summary>
    public static MoeForCausalLM Clone(MoeForCausalLM model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var copy = new MoeForCausalLM(model.Options); // its initial weights are overwritten below
        copy.to(model.Device, model.parameters().First().dtype);
        using (torch.no_grad())
        {
            var source = model.state_dict();
            foreach (var (name, tensor) in copy.state_dict()) tensor.copy_(source[name]);
        }

        return copy;
    }

    /// <inheritdoc />
    public void Dispose() => Model.Dispose();
}
