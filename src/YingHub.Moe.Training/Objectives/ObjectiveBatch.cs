using static TorchSharp.torch;

namespace YingHub.Moe.Training.Objectives;

/// <summary>A batch of a <see cref="TrainingObjective"/>, as the model takes it (<c>CausalLMInput</c>). Owns its tensors.</summary>
/// <param name="InputIds">Token ids (B, T), int64; a short sequence is padded at the end.</param>
/// <param name="Labels">Next-token targets (B, T), int64, −100 where the loss does not train (context, padding).</param>
/// <param name="AttentionMask">1 for real tokens, 0 for padding (B, T), bool; null when no row is padded.</param>
/// <param name="PrefixLength">Bidirectional prefix per row (B), int64; null when every row is causal.</param>
/// <param name="Objectives">Each row's objective name.</param>
public sealed record ObjectiveBatch(Tensor InputIds, Tensor Labels, Tensor? AttentionMask, Tensor? PrefixLength, IReadOnlyList<string> Objectives) : IDisposable
{
    /// <inheritdoc />
    public void Dispose()
    {
        InputIds.Dispose();
        Labels.Dispose();
        AttentionMask?.Dispose();
        PrefixLength?.Dispose();
    }
}
