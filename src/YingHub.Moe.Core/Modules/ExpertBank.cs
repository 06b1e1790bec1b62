using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Core.Precision;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// A bank of feed-forward experts of one kind, stacked: <i>simple</i> (Linear C→H, activation, Linear H→C), <i>deep</i>
/// (two hidden layers: C→H, H→H, H→C), or SwiGLU (fused gate/up C→2H, <c>silu(gate) * up</c>, down H→C). H is
/// <see cref="MoeModelOptions.ExpertWidth"/> (<see cref="MoeModelOptions.ExpertMultiplier"/> × C unless
/// <see cref="MoeModelOptions.IntermediateSize"/> is set). Expert dropout is applied by the caller on the combined output.
/// </summary>
internal sealed class ExpertBank : nn.Module
{
    [ComponentName(Name = "fc1")] private readonly StackedLinear _fc1;  // C -> H (SwiGLU: C -> 2H, the fused gate and up projections)
    [ComponentName(Name = "fc2")] private readonly StackedLinear _fc2;  // H -> C, or H -> H when deep
    [ComponentName(Name = "fc3")] private readonly StackedLinear? _fc3; // deep only: H -> C
    private readonly ExpertActivation _activation;

    public ExpertBank(int count, bool deep, MoeModelOptions options) : base(nameof(ExpertBank))
    {
        int c = options.HiddenSize, h = options.ExpertWidth;
        Count = count;
        Deep = deep;
        _activation = options.Activation;
        int firstOut = _activation == ExpertActivation.SwiGlu ? 2 * h : h;
        _fc1 = new StackedLinear(count, c, firstOut, options.Bias, options);
        if (deep)
        {
            _fc2 = new StackedLinear(count, h, firstOut, options.Bias, options);
            _fc3 = new StackedLinear(count, h, c, options.Bias, options, residual: true);
        }
        else
        {
            _fc2 = new StackedLinear(count, h, c, options.Bias, options, residual: true);
        }

        RegisterComponents();
    }

    /// <summary>Experts in this bank.</summary>
    public int Count { get; }

    /// <summary>Whether these experts have two hidden layers.</summary>
    public bool Deep { get; }

    /// <summary>
    /// Every expert of the bank on its own tokens: <paramref name="inputs"/>[j] (n_j, C) → (n_j, C), or null where
    /// expert j has no tokens (it costs nothing). Each stacked weight is unbound once for all experts.
    /// </summary>
    public Tensor?[] Forward(IReadOnlyList<Tensor?> inputs)
    {
        var outputs = new Tensor?[Count];
        if (inputs.All(x => x is null)) return outputs;
        var (w1, b1) = _fc1.Unbind();
        var (w2, b2) = _fc2.Unbind();
        (Tensor[]? w3, Tensor[]? b3) = _fc3 is null ? (null, null) : _fc3.Unbind();
        for (int j = 0; j < Count; j++)
        {
            if (inputs[j] is not { } x) continue;
            var h = Activate(Autocast.MatMul(x, w1[j], b1?[j]));                          // (n_j, H)
            h = Autocast.MatMul(h, w2[j], b2?[j]);                                                // (n_j, C) or (n_j, H) when deep
            outputs[j] = Deep ? Autocast.MatMul(Activate(h), w3![j], b3?[j]) : h;          // (n_j, C)
        }

        return outputs;
    }

    /// <summary>Expert <paramref name="index"/> applied to x (n, C) → (n, C).</summary>
    public Tensor Forward(int index, Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = Activate(_fc1.Forward(index, x)); // (n, H)
        var y = Deep ? _fc3!.Forward(index, Activate(_fc2.Forward(index, h))) : _fc2.Forward(index, h); // (n, C)
        return y.MoveToOuterDisposeScope();
    }

    /// <summary>Expert <paramref name="index"/>'s layers in order, as kept (in, out) views; inference only (<see cref="InferenceViews.Active"/>).</summary>
    public ExpertLayer[] Layers(int index) =>
        _fc3 is null ? [_fc1.Layer(index), _fc2.Layer(index)] : [_fc1.Layer(index), _fc2.Layer(index), _fc3.Layer(index)];

    private Tensor Activate(Tensor x) => _activation switch
    {
        ExpertActivation.Relu => nn.functional.relu(x),
        ExpertActivation.Gelu => nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        _ => SwiGlu(x),
    };

    private static Tensor SwiGlu(Tensor x) // (n, 2H) -> (n, H)
    {
        var parts = x.chunk(2, dim: -1);
        return nn.functional.silu(parts[0]) * parts[1];
    }
}
