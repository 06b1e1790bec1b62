using TorchSharp.Modules;
using YingHub.Moe.Core.Quantization;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// A linear layer of the library's own kinds, seen from outside (e.g. by LoRA adapters in YingHub.Moe.Training):
/// <c>y = x Wᵀ + b</c> for x (..., in). Implemented by the attention projections (<c>qkv_proj</c>, <c>o_proj</c>) and
/// GPT-2's <c>Conv1D</c> (<c>c_attn</c>, <c>c_proj</c>, <c>c_fc</c>); TorchSharp's own <c>nn.Linear</c> is not one
/// (its weight is always (out, in)). Each such layer is a <c>nn.Module&lt;Tensor, Tensor&gt;</c> invoked through
/// <c>call</c>, so forward hooks on it fire.
/// </summary>
public interface ILinearLayer
{
    /// <summary>The weight: (in, out) when <see cref="InputMajor"/>, else (out, in) as <c>nn.Linear</c> stores it.</summary>
    /// <exception cref="InvalidOperationException">The layer is quantized (<see cref="Quantization"/>): it has no float weight.</exception>
    Parameter Weight { get; }

    /// <summary>The format the weight is stored in after <see cref="ModelQuantization.Quantize"/>, or null while it is a float Parameter.</summary>
    QuantizationKind? Quantization { get; }

    /// <summary>The tensor that holds the weight: <see cref="Weight"/>, or the packed codes once quantized (on the layer's device either way).</summary>
    Tensor StoredWeight { get; }

    /// <summary>Input features.</summary>
    int InFeatures { get; }

    /// <summary>Output features.</summary>
    int OutFeatures { get; }

    /// <summary>True when <see cref="Weight"/> is stored input-major, (in, out), and <c>y = x W + b</c> (GPT-2's <c>Conv1D</c> layout).</summary>
    bool InputMajor { get; }
}
