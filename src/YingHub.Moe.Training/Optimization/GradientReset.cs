using TorchSharp.Modules;
using static TorchSharp.torch.optim;

namespace YingHub.Moe.Training.Optimization;

/// <summary>
/// Sets gradients to none (PyTorch's <c>zero_grad(set_to_none=True)</c>). TorchSharp's <c>Optimizer.zero_grad()</c>
/// zeroes gradients in place, and AdamW skips only <b>null</b> gradients: an expert that received no tokens would still
/// get weight decay and a momentum update from a zero gradient. Call this instead before each backward pass.
/// </summary>
public static class GradientReset
{
    /// <summary>Sets the gradient of every parameter of <paramref name="optimizer"/> to null.</summary>
    /// <param name="optimizer">The optimizer whose parameters are reset.</param>
    public static void SetGradientsToNone(this Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        SetGradientsToNone(optimizer.parameters());
    }

    /// <summary>Sets the gradient of every parameter in <paramref name="parameters"/> to null (one native call each, no tensor allocated).</summary>
    /// <param name="parameters">The parameters to reset.</param>
    public static void SetGradientsToNone(IEnumerable<Parameter> parameters)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        foreach (Parameter p in parameters) p.grad = null;
    }
}
