using System.Text.Json.Serialization;

namespace YingHub.Moe.Core.Configuration;

// The choices on which the presets' sources differ from the library's defaults (makeMoE, YingHub-v2): each an option
// of MoeModelOptions, the library's rule first. docs/presets.md tables them per preset.

/// <summary>
/// How attention scores are scaled before the softmax: <c>softmax(q kᵀ · scale)</c>.
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<AttentionScaleRule>))]
public enum AttentionScaleRule
{
    /// <summary>1/√(head dim): the standard (Vaswani et al. 2017, GPT-2, Llama, Mixtral).</summary>
    HeadDim,

    /// <summary>
    /// 1/√(hidden size C): makeMoE's and YingHub-v2's <c>C**-0.5</c>, where C is the model width n_embd, not the head
    /// width. Scores come out √(heads) times smaller than with <see cref="HeadDim"/>, so attention starts softer.
    /// </summary>
    HiddenSize,
}

/// <summary>Where each sub-layer's normalisation sits relative to its residual connection.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<NormPosition>))]
public enum NormPosition
{
    /// <summary>Pre-norm: <c>x = x + f(norm(x))</c> (GPT-2, Llama, Mixtral, makeMoE, YingHub-v2's blocks).</summary>
    Pre,

    /// <summary>
    /// Post-norm, the original Transformer's: <c>x = norm(x + f(x))</c>. The residual stream is normalised after every
    /// sub-layer; the model's final norm still runs before the LM head.
    /// </summary>
    Post,
}

/// <summary>How biases start (weights follow <see cref="InitScheme"/>).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<BiasInitScheme>))]
public enum BiasInitScheme
{
    /// <summary>Zero (GPT-2, nanoGPT, Hugging Face's <c>_init_weights</c>).</summary>
    Zero,

    /// <summary>
    /// uniform(−1/√fan_in, 1/√fan_in): PyTorch's own <c>nn.Linear</c> default, which makeMoE's
    /// <c>kaiming_init_weights</c> leaves on every bias (it redraws weights only).
    /// </summary>
    Uniform,
}

/// <summary>How the expert capacity <c>factor · N · k / E</c> is rounded to a whole number of assignments.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<CapacityRoundingRule>))]
public enum CapacityRoundingRule
{
    /// <summary>Up, and at least 1 (GShard, Switch Transformer): one token alone is never dropped.</summary>
    Ceil,

    /// <summary>
    /// Down, as makeMoE's <c>int(tokens_per_batch / num_experts * capacity_factor)</c>, computed in the same order in
    /// double precision; it can be 0 (a one-token forward with k &lt; E and factor 1 drops everything).
    /// </summary>
    Floor,
}

/// <summary>Which assignments an expert keeps when more than its capacity choose it.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<CapacityRankingRule>))]
public enum CapacityRankingRule
{
    /// <summary>
    /// Earlier sequence positions first, across the batch (position t of every row before position t + 1 of any):
    /// within a batch no sequence's early tokens are crowded out by another sequence's later ones.
    /// </summary>
    Position,

    /// <summary>
    /// First come, first served in flat token order b·T + t (row 0 whole, then row 1, ...), as makeMoE's
    /// <c>torch.nonzero(mask)[:capacity]</c>: a row's tokens can be dropped because of everything in the rows before it.
    /// </summary>
    Flat,
}
