using TorchSharp;
using YingHub.Moe.Core.Losses;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Experience;

/// <summary>
/// Per-response-token quantities from a forward over an <see cref="ExperienceBatch"/>'s sequences: position P − 1 + j
/// predicts response token j, so the response's logits, log-probabilities and values are the R positions from P − 1.
/// The rollout, the reference and every update read them here, one way.
/// </summary>
public static class ResponseLogProbs
{
    /// <summary>The R positions (B, R, …) of a per-position tensor (B, P + R, …) that predict the response tokens.</summary>
    public static Tensor Slice(Tensor perPosition, int promptColumns, int responseColumns)
    {
        ArgumentNullException.ThrowIfNull(perPosition);
        if (promptColumns < 1 || responseColumns < 1 || perPosition.size(1) < promptColumns + responseColumns - 1)
            throw new ArgumentException($"A tensor of shape [{string.Join(", ", perPosition.shape)}] has no {responseColumns} response positions after {promptColumns} prompt columns.", nameof(perPosition));
        return perPosition.narrow(1, promptColumns - 1, responseColumns);
    }

    /// <summary>
    /// <c>log softmax(logits / temperature)</c> at the response tokens (B, R), fp32, 0 off <paramref name="responseMask"/>;
    /// differentiable when the logits are.
    /// </summary>
    /// <param name="logits">The forward's logits (B, P + R, V).</param>
    /// <param name="promptColumns">P.</param>
    /// <param name="responseTokens">(B, R), int64.</param>
    /// <param name="responseMask">(B, R), bool.</param>
    /// <param name="temperature">The sampling temperature the rollout used, &gt; 0.</param>
    public static Tensor Gather(Tensor logits, int promptColumns, Tensor responseTokens, Tensor responseMask, double temperature)
    {
        ArgumentNullException.ThrowIfNull(responseTokens);
        using var scope = torch.NewDisposeScope();
        var scaled = Scaled(logits, promptColumns, (int)responseTokens.size(1), temperature);  // (B, R, V)
        return TokenLogProbs.Gather(scaled, responseTokens, responseMask).MoveToOuterDisposeScope();
    }

    /// <summary>The entropy of <c>softmax(logits / temperature)</c> at each response position (B, R), fp32, 0 off the mask.</summary>
    public static Tensor Entropy(Tensor logits, int promptColumns, Tensor responseMask, double temperature)
    {
        ArgumentNullException.ThrowIfNull(responseMask);
        using var scope = torch.NewDisposeScope();
        var logP = Scaled(logits, promptColumns, (int)responseMask.size(1), temperature).log_softmax(-1); // (B, R, V)
        var entropy = -(logP.exp() * logP).sum(-1);                                                        // (B, R)
        return entropy.masked_fill(responseMask.logical_not(), 0).MoveToOuterDisposeScope();
    }

    private static Tensor Scaled(Tensor logits, int promptColumns, int responseColumns, double temperature)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (!(temperature > 0 && double.IsFinite(temperature))) throw new ArgumentException($"temperature = {temperature} is invalid; allowed: > 0 and finite.", nameof(temperature));
        var response = Slice(logits, promptColumns, responseColumns).to(ScalarType.Float32);      // (B, R, V)
        return temperature == 1 ? response : response / temperature;
    }
}
