using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Rl.Algorithms;

/// <summary>
/// Advantage estimates over response tokens, as pure functions (like <c>RouterLosses</c>): GAE for PPO with a value
/// baseline, group-normalised rewards for GRPO, and masked whitening. Every tensor is (B, T) over a batch of responses
/// with a mask (B, T), true on response tokens; positions outside the mask get 0 and never feed into the others.
/// </summary>
public static class Advantages
{
    /// <summary>
    /// Generalised advantage estimation (Schulman et al. 2016), backwards over the response tokens of each row:
    /// <list type="bullet">
    /// <item><c>δ_t = r_t + γ · V_{t+1} − V_t</c>, with <c>V_{t+1} = 0</c> after the last response token (the episode ends there);</item>
    /// <item><c>A_t = δ_t + γλ · A_{t+1}</c>;</item>
    /// <item>returns <c>R_t = A_t + V_t</c> (the value head's targets).</item>
    /// </list>
    /// The mask must be true on one contiguous run of each row (a response, then padding); rows may differ in length.
    /// </summary>
    /// <param name="rewards">Rewards per token (B, T), e.g. the task reward on the last token and −β·KL on every token.</param>
    /// <param name="values">Value estimates (B, T), no gradient needed.</param>
    /// <param name="mask">Response tokens (B, T), bool.</param>
    /// <param name="gamma">Discount γ, [0, 1].</param>
    /// <param name="lambda">GAE λ, [0, 1].</param>
    /// <returns>Advantages and returns (B, T), fp32, 0 outside the mask; owned by the caller.</returns>
    /// <exception cref="ArgumentException">Shapes differ, or γ or λ is outside [0, 1].</exception>
    public static (Tensor Advantages, Tensor Returns) Gae(Tensor rewards, Tensor values, Tensor mask, double gamma, double lambda)
    {
        CheckShapes(rewards, values, mask);
        if (!(gamma >= 0 && gamma <= 1)) throw new ArgumentException($"gamma = {gamma} is invalid; allowed: [0, 1].", nameof(gamma));
        if (!(lambda >= 0 && lambda <= 1)) throw new ArgumentException($"lambda = {lambda} is invalid; allowed: [0, 1].", nameof(lambda));
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        long t = rewards.size(1);
        var m = mask.to(ScalarType.Float32);                                               // (B, T)
        var r = rewards.to(ScalarType.Float32) * m;                                        // (B, T)
        var v = values.to(ScalarType.Float32) * m;                                         // (B, T)
        var columns = new Tensor[t];
        var next = torch.zeros_like(r.select(1, 0));                                       // (B): A_{t+1}
        var nextValue = torch.zeros_like(next);                                            // (B): V_{t+1}, 0 past the response
        for (long i = t - 1; i >= 0; i--)
        {
            var delta = r.select(1, i) + gamma * nextValue - v.select(1, i);              // (B)
            next = (delta + gamma * lambda * next) * m.select(1, i);                      // (B): 0 on padding, so it never flows back
            nextValue = v.select(1, i);
            columns[i] = next;
        }

        var advantages = torch.stack(columns, 1);                                          // (B, T)
        var returns = (advantages + v) * m;                                                // (B, T)
        return (advantages.MoveToOuterDisposeScope(), returns.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// <c>(x − mean) / sqrt(var + ε)</c> over the masked entries of the whole batch (the masked mean and the unbiased
    /// masked variance, as TRL's <c>masked_whiten</c>); with <paramref name="shiftMean"/> false the mean is added back.
    /// Entries outside the mask get 0.
    /// </summary>
    /// <param name="x">Values (B, T).</param>
    /// <param name="mask">Entries that count (B, T), bool; at least two.</param>
    /// <param name="shiftMean">Centre on zero (true) or keep the mean (false).</param>
    /// <param name="epsilon">Added to the variance, &gt; 0.</param>
    /// <exception cref="ArgumentException">Shapes differ, or fewer than two entries count.</exception>
    public static Tensor Whiten(Tensor x, Tensor mask, bool shiftMean = true, double epsilon = 1e-8)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(mask);
        if (!x.shape.SequenceEqual(mask.shape))
            throw new ArgumentException($"x [{string.Join(", ", x.shape)}] and mask [{string.Join(", ", mask.shape)}] differ in shape.", nameof(mask));
        using var scope = torch.NewDisposeScope();
        var m = mask.to(ScalarType.Float32);
        double n = m.sum().item<float>();
        if (n < 2) throw new ArgumentException($"Whitening needs at least two counted entries; the mask has {n}.", nameof(mask));
        var fp32 = x.to(ScalarType.Float32);
        var mean = (fp32 * m).sum() / n;                                                   // ()
        var variance = ((fp32 - mean).square() * m).sum() / (n - 1);                       // (): unbiased
        var whitened = (fp32 - mean) * torch.rsqrt(variance + epsilon);
        if (!shiftMean) whitened = whitened + mean;
        return (whitened * m).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// GRPO's advantage (Shao et al. 2024): responses come in groups of <paramref name="groupSize"/> for the same
    /// prompt (consecutive rows); each response's advantage is <c>(r − mean of its group) / (std of its group + ε)</c>,
    /// with the unbiased standard deviation, given to every one of its tokens.
    /// </summary>
    /// <param name="rewards">One reward per response (B), B a multiple of the group size.</param>
    /// <param name="groupSize">Responses per prompt G, ≥ 2.</param>
    /// <param name="mask">Response tokens (B, T), bool.</param>
    /// <param name="epsilon">Added to the standard deviation, &gt; 0 (a group of equal rewards gets advantage 0).</param>
    /// <returns>Advantages (B, T), fp32, 0 outside the mask.</returns>
    public static Tensor Grpo(Tensor rewards, int groupSize, Tensor mask, double epsilon = 1e-4)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        ArgumentNullException.ThrowIfNull(mask);
        if (groupSize < 2) throw new ArgumentException($"groupSize = {groupSize} is invalid; allowed: >= 2.", nameof(groupSize));
        if (rewards.dim() != 1 || rewards.size(0) % groupSize != 0 || mask.dim() != 2 || mask.size(0) != rewards.size(0))
            throw new ArgumentException($"rewards must be (B) with B a multiple of {groupSize} and mask (B, T); got [{string.Join(", ", rewards.shape)}] and [{string.Join(", ", mask.shape)}].", nameof(rewards));
        using var scope = torch.NewDisposeScope();
        var groups = rewards.to(ScalarType.Float32).view(-1, groupSize);                   // (B / G, G)
        var normalised = (groups - groups.mean([1], keepdim: true)) / (groups.std(1, unbiased: true, keepdim: true) + epsilon); // (B / G, G)
        var perToken = normalised.reshape(-1, 1) * mask.to(ScalarType.Float32);           // (B, T)
        return perToken.MoveToOuterDisposeScope();
    }

    private static void CheckShapes(Tensor rewards, Tensor values, Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(rewards);
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(mask);
        if (rewards.dim() != 2 || !rewards.shape.SequenceEqual(values.shape) || !rewards.shape.SequenceEqual(mask.shape))
            throw new ArgumentException($"rewards, values and mask must share one (B, T) shape; got [{string.Join(", ", rewards.shape)}], [{string.Join(", ", values.shape)}], [{string.Join(", ", mask.shape)}].", nameof(mask));
    }
}
