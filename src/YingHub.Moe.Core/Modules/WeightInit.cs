using TorchSharp;
using YingHub.Moe.Core.Configuration;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>Initialises weights by <see cref="MoeModelOptions.Init"/> and biases by <see cref="MoeModelOptions.BiasInit"/>.</summary>
internal static class WeightInit
{
    [ThreadStatic] private static bool _skipping;

    /// <summary>
    /// Until disposed, models built on this thread leave their weights as allocated instead of drawing them: for a
    /// model whose every weight is about to be loaded (drawing the weights is most of building a model).
    /// </summary>
    public static IDisposable Skip()
    {
        bool outer = _skipping;
        _skipping = true;
        return new Restore(() => _skipping = outer);
    }

    private sealed class Restore(Action restore) : IDisposable
    {
        public void Dispose() => restore();
    }

    /// <summary>
    /// Initialises a weight of shape (..., out, in) in place, slice by slice over leading (stacked-expert) dimensions,
    /// so every expert is initialised as its own Linear would be. A <paramref name="residual"/> weight projects into the
    /// residual stream and starts as <see cref="Residual"/> says.
    /// </summary>
    public static void Weight(Tensor weight, MoeModelOptions options, bool residual = false)
    {
        if (_skipping) return;
        using var _ = torch.no_grad();
        if (weight.dim() > 2)
        {
            for (long i = 0; i < weight.shape[0]; i++)
            {
                using var slice = weight[i];
                Weight(slice, options, residual);
            }

            return;
        }

        var start = residual ? Residual(options) : ResidualInitScheme.Unscaled;
        if (start == ResidualInitScheme.Zero)
        {
            weight.zero_();
            return;
        }

        double scale = start == ResidualInitScheme.Scaled ? 1 / Math.Sqrt(2.0 * options.NumLayers) : 1.0;
        switch (options.Init)
        {
            case InitScheme.Normal:
                nn.init.normal_(weight, 0, options.InitStd * scale);
                return;
            case InitScheme.KaimingNormal:
                nn.init.kaiming_normal_(weight);
                break;
            case InitScheme.Xavier:
                nn.init.xavier_uniform_(weight);
                break;
            default:
                throw new ArgumentException($"Init = {options.Init} is not an initialisation scheme.", nameof(options));
        }

        if (scale != 1.0) weight.mul_(scale);
    }

    /// <summary>
    /// How projections into the residual stream start: <see cref="MoeModelOptions.ResidualInit"/>, or the scheme's
    /// convention (GPT-2 scales its normal init; PyTorch's Kaiming and Xavier functions do not).
    /// </summary>
    public static ResidualInitScheme Residual(MoeModelOptions options) =>
        options.ResidualInit ?? (options.Init == InitScheme.Normal ? ResidualInitScheme.Scaled : ResidualInitScheme.Unscaled);

    /// <summary>Initialises a Linear's weight (out, in) by the scheme and its bias (if any) by <see cref="Bias"/>.</summary>
    public static void Linear(nn.Module<Tensor, Tensor> linear, MoeModelOptions options)
    {
        var l = (TorchSharp.Modules.Linear)linear;
        Weight(l.weight!, options);
        if (l.bias is not null) Bias(l.bias, l.weight!.size(1), options);
    }

    /// <summary>
    /// Initialises a bias in place by <see cref="MoeModelOptions.BiasInit"/>: zero, or uniform(−1/√fanIn, 1/√fanIn) as
    /// PyTorch's <c>nn.Linear.reset_parameters</c> draws it (<paramref name="fanIn"/>: the inputs of the layer it
    /// belongs to; stacked experts share one fan-in, so one draw over the stack is each expert's own draw).
    /// </summary>
    public static void Bias(Tensor bias, long fanIn, MoeModelOptions options)
    {
        if (_skipping) return;
        using var _ = torch.no_grad();
        switch (options.BiasInit)
        {
            case BiasInitScheme.Zero:
                bias.zero_();
                return;
            case BiasInitScheme.Uniform:
                double bound = fanIn > 0 ? 1 / Math.Sqrt(fanIn) : 0;
                nn.init.uniform_(bias, -bound, bound);
                return;
            default:
                throw new ArgumentException($"BiasInit = {options.BiasInit} is not a bias initialisation scheme.", nameof(options));
        }
    }

    /// <summary>
    /// Embedding weights: normal(0, InitStd) with <see cref="InitScheme.Normal"/> (GPT-2), else PyTorch's default
    /// normal(0, 1), which makeMoE's Kaiming init leaves on its embeddings.
    /// </summary>
    public static void Embedding(Tensor weight, MoeModelOptions options)
    {
        if (_skipping) return;
        using var _ = torch.no_grad();
        nn.init.normal_(weight, 0, options.Init == InitScheme.Normal ? options.InitStd : 1.0);
    }
}

/// <summary>
/// Tensors a module keeps (parameters, buffers, caches) must outlive whatever dispose scope is open while the module is
/// built: a model constructed inside a caller's <c>NewDisposeScope()</c> would otherwise lose its weights when that
/// scope ends (built-in TorchSharp modules detach their own weights the same way).
/// </summary>
internal static class Owned
{
    /// <summary>A parameter over <paramref name="data"/>, detached from every dispose scope.</summary>
    public static Parameter Parameter(Tensor data)
    {
        var parameter = new Parameter(data.DetachFromDisposeScope());
        parameter.DetachFromDisposeScope();
        return parameter;
    }

    /// <summary><paramref name="tensor"/>, detached from every dispose scope.</summary>
    public static Tensor Tensor(Tensor tensor) => tensor.DetachFromDisposeScope();
}
