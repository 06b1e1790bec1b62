using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>RMSNorm: <c>x / sqrt(mean(x^2) + eps) * weight</c>, computed in fp32.</summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "weight")] private readonly Parameter _weight; // (C)
    private readonly double _eps;

    public RmsNorm(long size, double eps) : base(nameof(RmsNorm))
    {
        _weight = Owned.Parameter(torch.ones(size));
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) // (..., C)
    {
        using var scope = torch.NewDisposeScope();
        var xf = x.to(ScalarType.Float32);
        var y = xf * torch.rsqrt(xf.pow(2).mean([-1], keepdim: true) + _eps);
        return (y.to(x.dtype) * _weight).MoveToOuterDisposeScope();
    }
}

/// <summary>Builds the normalisation layer chosen by <see cref="MoeModelOptions.Norm"/>.</summary>
internal static class Norms
{
    public static nn.Module<Tensor, Tensor> Create(MoeModelOptions options) => options.Norm switch
    {
        NormKind.RmsNorm => new RmsNorm(options.HiddenSize, options.NormEpsilon),
        _ => nn.LayerNorm(options.HiddenSize, options.NormEpsilon),
    };
}

/// <summary>Dropout that costs nothing when inactive (evaluation mode, or p = 0): it then returns its input itself.</summary>
internal static class Regularization
{
    /// <summary>
    /// Inverted dropout: each element is kept with probability 1 − p and scaled by 1 / (1 − p). The keep mask is drawn
    /// as <c>uniform ≥ p</c> in the input's own type and scaled in place (three kernels and one buffer), which on CPU is
    /// about 3.5× faster than libtorch's <c>dropout</c> (its <c>bernoulli_</c> is the slow part; measured in
    /// docs/benchmarks.md). Same distribution, same expectation, gradient = upstream × mask.
    /// </summary>
    public static Tensor Dropout(Tensor x, double p, bool training)
    {
        if (!training || p <= 0) return x;
        if (p >= 1) return x.mul(0.0);
        using var scope = torch.NewDisposeScope();
        // the uniform draw is float32 whatever x's type, so a bfloat16 input keeps exactly probability 1 − p
        var uniform = x.dtype == ScalarType.Float32 ? torch.rand_like(x) : torch.rand(x.shape, ScalarType.Float32, x.device);
        var mask = uniform.ge_(p);                                          // (x.shape): 1 kept, 0 dropped
        if (x.dtype != ScalarType.Float32) mask = mask.to(x.dtype);
        mask = mask.mul_(1.0 / (1.0 - p));                                 // 0 or 1 / (1 − p), no gradient
        return x.mul(mask).MoveToOuterDisposeScope();
    }
}

/// <summary>DropPath (stochastic depth): drops a whole residual branch per sample with probability p in training.</summary>
internal sealed class DropPath : nn.Module<Tensor, Tensor>
{
    private readonly double _p;

    public DropPath(double p) : base(nameof(DropPath))
    {
        _p = p;
        RegisterComponents();
    }

    /// <summary>Whether a call changes anything (training mode with p &gt; 0).</summary>
    public bool Active => training && _p > 0;

    public override Tensor forward(Tensor x) // (B, T, C)
    {
        if (!Active) return x.alias();
        using var scope = torch.NewDisposeScope();
        // One Bernoulli(1 - p) draw per sample, survivors scaled by 1 / (1 - p) so the expectation is unchanged.
        var keep = torch.empty(x.size(0), 1, 1, dtype: x.dtype, device: x.device).bernoulli_(1 - _p); // (B, 1, 1)
        return (x * keep / (1 - _p)).MoveToOuterDisposeScope();
    }
}
