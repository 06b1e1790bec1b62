using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Algorithms;

/// <summary>
/// Rewards per response token for PPO (Ziegler et al. 2019; Ouyang et al. 2022): the task reward of each whole response
/// on its last response token, and the KL penalty <c>−β · kl_t</c> on every response token. The two parts are returned
/// apart as well, so each can be logged.
/// </summary>
public static class TokenRewards
{
    /// <summary>Rewards per token (B, T) and their two parts, fp32, 0 outside <paramref name="mask"/>; owned by the caller.</summary>
    /// <param name="taskRewards">One score per response (B), e.g. a weighted sum of reward functions on the decoded text.</param>
    /// <param name="kl">Per-token KL estimates (B, T) (<see cref="Kl.PerToken"/>), no gradient needed.</param>
    /// <param name="mask">Response tokens (B, T), bool: one contiguous run per row, at least one token each.</param>
    /// <param name="beta">The KL coefficient β, ≥ 0.</param>
    /// <exception cref="ArgumentException">Shapes that do not fit, a row with no response token, or β negative.</exception>
    public static (Tensor Rewards, Tensor Task, Tensor KlPenalty) Compute(Tensor taskRewards, Tensor kl, Tensor mask, double beta)
    {
        ArgumentNullException.ThrowIfNull(taskRewards);
        ArgumentNullException.ThrowIfNull(kl);
        ArgumentNullException.ThrowIfNull(mask);
        if (!(beta >= 0 && double.IsFinite(beta))) throw new ArgumentException($"beta = {beta} is invalid; allowed: >= 0 and finite.", nameof(beta));
        if (taskRewards.dim() != 1 || kl.dim() != 2 || !kl.shape.SequenceEqual(mask.shape) || kl.size(0) != taskRewards.size(0))
            throw new ArgumentException($"taskRewards must be (B) and kl and mask (B, T); got [{string.Join(", ", taskRewards.shape)}], [{string.Join(", ", kl.shape)}], [{string.Join(", ", mask.shape)}].", nameof(mask));
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var m = mask.to(ScalarType.Bool);                                                           // (B, T)
        long t = m.size(1);
        var positions = torch.arange(t, device: m.device).unsqueeze(0).expand_as(m);               // (B, T)
        var last = positions.masked_fill(m.logical_not(), -1).amax([1]);                           // (B): last response position
        if (last.lt(0).any().item<bool>()) throw new ArgumentException("Every row needs at least one response token.", nameof(mask));
        var task = torch.zeros(m.shape, dtype: ScalarType.Float32, device: m.device)
            .scatter(1, last.unsqueeze(1), taskRewards.to(ScalarType.Float32).unsqueeze(1));      // (B, T): the score on the last token
        var penalty = (-beta * kl.to(ScalarType.Float32)).masked_fill(m.logical_not(), 0);        // (B, T)
        return ((task + penalty).MoveToOuterDisposeScope(), task.MoveToOuterDisposeScope(), penalty.MoveToOuterDisposeScope());
    }
}
