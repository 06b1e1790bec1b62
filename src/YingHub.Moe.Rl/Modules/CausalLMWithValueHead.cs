using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Modules;

/// <summary>
/// The PPO policy: a <see cref="MoeForCausalLM"/> and a <see cref="ValueHead"/> on its final hidden states, as TRL's
/// <c>AutoModelForCausalLMWithValueHead</c>. <see cref="NamedParameters"/> lists both for one optimizer (the language
/// model's names as they are, the value head's under <see cref="ValueHeadPrefix"/>). It owns the value head, not the
/// language model.
/// </summary>
public sealed class CausalLMWithValueHead : IDisposable
{
    /// <summary>The value head's parameter-name prefix in <see cref="NamedParameters"/> (TRL's <c>v_head</c>).</summary>
    public const string ValueHeadPrefix = "v_head.";

    /// <summary>Wraps <paramref name="model"/> with <paramref name="valueHead"/> (moved to the model's device), or a new zero-initialised one.</summary>
    /// <param name="model">The language model under the head; not owned.</param>
    /// <param name="valueHead">The head, or null for a new zero-initialised one; owned.</param>
    /// <param name="modelPrefix">Prefix of the model's names in <see cref="NamedParameters"/> (e.g. <c>critic.</c> when the model is a separate critic beside the policy in one optimizer).</param>
    /// <exception cref="ArgumentException">The value head's width differs from the model's hidden size.</exception>
    public CausalLMWithValueHead(MoeForCausalLM model, ValueHead? valueHead = null, string modelPrefix = "")
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(modelPrefix);
        Model = model;
        ModelPrefix = modelPrefix;
        ValueHead = valueHead ?? new ValueHead(model.Options.HiddenSize);
        long width = ValueHead.parameters().First().size(-1);
        if (width != model.Options.HiddenSize)
            throw new ArgumentException($"The value head reads {width} features; the model's hidden size is {model.Options.HiddenSize}.", nameof(valueHead));
        ValueHead.to(model.Device);
    }

    /// <summary>The language model (the policy, or a separate critic); not owned.</summary>
    public MoeForCausalLM Model { get; }

    /// <summary>The value head; owned.</summary>
    public ValueHead ValueHead { get; }

    /// <summary>Prefix of the model's parameter names in <see cref="NamedParameters"/>.</summary>
    public string ModelPrefix { get; }

    /// <summary>The model's parameters (under <see cref="ModelPrefix"/>), then the value head's under <see cref="ValueHeadPrefix"/>.</summary>
    public IEnumerable<(string name, Parameter parameter)> NamedParameters() =>
        Model.named_parameters().Select(p => (ModelPrefix + p.name, p.parameter)).Concat(ValueHead.named_parameters().Select(p => (ValueHeadPrefix + p.name, p.parameter)));

    /// <summary>
    /// Runs the language model on <paramref name="input"/> (asking for its final hidden states) and the value head on
    /// them. With <paramref name="valueTrainsModel"/> false the head reads the hidden states detached, so the value loss
    /// trains the head alone (a separate critic in effect); true shares the trunk, as TRL does.
    /// </summary>
    /// <returns>The model's output (owned by the caller) and the values (B, T), fp32.</returns>
    public (CausalLMOutput Output, Tensor Values) Forward(CausalLMInput input, bool valueTrainsModel = true)
    {
        ArgumentNullException.ThrowIfNull(input);
        var output = Model.call(input with { OutputHiddenStates = true });
        var hidden = valueTrainsModel ? output.LastHiddenState! : output.LastHiddenState!.detach(); // (B, T, C)
        return (output, ValueHead.call(hidden));
    }

    /// <summary>Switches both to training or evaluation mode.</summary>
    public void Train(bool on)
    {
        Model.train(on);
        ValueHead.train(on);
    }

    /// <inheritdoc />
    public void Dispose() => ValueHead.Dispose();
}
