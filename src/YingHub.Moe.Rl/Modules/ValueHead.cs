using TorchSharp;
using TorchSharp.Modules;
using TorchSharp.Utils;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Modules;

/// <summary>
/// PPO's value head: a linear layer from the policy's final hidden state (after the last norm,
/// <c>CausalLMInput.OutputHiddenStates</c>) to one value per token, started at zero weight and bias so the first
/// advantages are the rewards themselves (Ziegler et al. 2019 zero-initialise it; TRL's value head starts small).
/// State-dict keys: <c>summary.weight</c> (1, C) and <c>summary.bias</c> (1), as TRL's <c>v_head.summary</c>.
/// </summary>
public sealed class ValueHead : nn.Module<Tensor, Tensor>
{
    [ComponentName(Name = "summary")] private readonly Linear _summary; // C -> 1

    /// <summary>A value head over hidden states of <paramref name="hiddenSize"/> features, on the CPU.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="hiddenSize"/> is below 1.</exception>
    public ValueHead(int hiddenSize) : base(nameof(ValueHead))
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(hiddenSize, 1);
        _summary = nn.Linear(hiddenSize, 1, hasBias: true);
        using (torch.no_grad())
        {
            _summary.weight!.zero_();
            _summary.bias!.zero_();
        }

        RegisterComponents();
    }

    /// <summary>Hidden states (B, T, C) → values (B, T), fp32.</summary>
    public override Tensor forward(Tensor hidden)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        using var scope = torch.NewDisposeScope();
        var values = _summary.call(hidden.to(_summary.weight!.dtype)).squeeze(-1);  // (B, T)
        return values.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }
}
