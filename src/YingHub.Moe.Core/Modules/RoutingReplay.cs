using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// Rollout routing replay: the experts each token took in one forward (<see cref="MoeLayerRouting.SelectedExperts"/>,
/// one (B·T, k) int64 tensor per MoE layer) are forced in a later forward (<see cref="CausalLMInput.RoutingReplay"/>),
/// so a PPO probability ratio compares the same expert paths while the gate weights, recomputed from the current
/// router's logits, still train the router. These helpers measure how much routing moved and slice recorded routing
/// by sequence.
/// </summary>
public static class RoutingReplay
{
    /// <summary>
    /// The share of tokens whose <em>set</em> of k experts differs between <paramref name="rolloutExperts"/> and
    /// <paramref name="updateExperts"/> (order within a token does not matter), over the tokens of
    /// <paramref name="mask"/>. Computed on the device, no host read; not differentiable.
    /// </summary>
    /// <param name="rolloutExperts">Experts (N, k), int64 (e.g. recorded in the rollout).</param>
    /// <param name="updateExperts">Experts (N, k), int64 (e.g. the current router's natural choice).</param>
    /// <param name="mask">Tokens that count, N elements of any shape (e.g. (B, T)), nonzero or true to count; null counts every token.</param>
    /// <returns>A scalar fp32 in [0, 1], owned by the caller; 0 when no token counts.</returns>
    /// <exception cref="ArgumentException">The shapes differ or are not (N, k), or the mask has not N elements.</exception>
    public static Tensor ChangeRate(Tensor rolloutExperts, Tensor updateExperts, Tensor? mask = null)
    {
        ArgumentNullException.ThrowIfNull(rolloutExperts);
        ArgumentNullException.ThrowIfNull(updateExperts);
        if (rolloutExperts.dim() != 2)
            throw new ArgumentException($"rolloutExperts must be (N, k); got shape [{string.Join(", ", rolloutExperts.shape)}].", nameof(rolloutExperts));
        if (!updateExperts.shape.SequenceEqual(rolloutExperts.shape))
            throw new ArgumentException($"updateExperts shape [{string.Join(", ", updateExperts.shape)}] differs from rolloutExperts shape [{string.Join(", ", rolloutExperts.shape)}].", nameof(updateExperts));
        long n = rolloutExperts.size(0);
        if (mask is not null && mask.numel() != n)
            throw new ArgumentException($"mask has {mask.numel()} elements; it must have one per token (N = {n}).", nameof(mask));
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        // sorting each row makes equal sets equal rows
        var changed = rolloutExperts.sort(-1).Values.ne(updateExperts.sort(-1).Values).any(-1);    // (N) bool
        var counted = mask is null ? torch.ones(n, dtype: ScalarType.Bool, device: changed.device) : mask.reshape(-1).ne(0); // (N) bool
        var tokens = counted.sum().to(ScalarType.Float32);                                           // ()
        var rate = (changed & counted).sum().to(ScalarType.Float32) / tokens.clamp_min(1);          // (): no counted token gives 0, not NaN
        return rate.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The rows (sequences) <paramref name="rows"/> of per-token experts recorded for a batch: (B·T, k) → (b'·T, k),
    /// row-major (token b·T + t), in the order of <paramref name="rows"/>; e.g. a PPO minibatch out of a rollout.
    /// </summary>
    /// <param name="experts">Experts (B·T, k), int64.</param>
    /// <param name="batch">B.</param>
    /// <param name="time">T.</param>
    /// <param name="rows">Sequence indices (b'), int64, each in [0, B).</param>
    /// <returns>A new tensor (b'·T, k), owned by the caller.</returns>
    /// <exception cref="ArgumentException"><paramref name="experts"/> is not (B·T, k), or <paramref name="rows"/> is not one-dimensional int64.</exception>
    public static Tensor SelectRows(Tensor experts, long batch, long time, Tensor rows)
    {
        ArgumentNullException.ThrowIfNull(experts);
        ArgumentNullException.ThrowIfNull(rows);
        if (batch < 1 || time < 1 || experts.dim() != 2 || experts.size(0) != batch * time)
            throw new ArgumentException($"experts must be (B·T, k) with B = {batch} ≥ 1 and T = {time} ≥ 1; got shape [{string.Join(", ", experts.shape)}].", nameof(experts));
        if (rows.dim() != 1 || rows.dtype != ScalarType.Int64)
            throw new ArgumentException($"rows must be (b') int64; got shape [{string.Join(", ", rows.shape)}], {rows.dtype}.", nameof(rows));
        using var scope = torch.NewDisposeScope();
        long k = experts.size(1);
        var picked = experts.view(batch, time, k).index_select(0, rows).reshape(-1, k); // (b', T, k) -> (b'·T, k)
        return picked.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Checks a forward's replay against its MoE layers and returns the experts each layer is forced to use (N, k),
    /// padding rows replaced by the experts 0..k−1 (padding routes nowhere, so what was recorded there is ignored, and
    /// only real tokens are checked). One host read for all layers; more only to describe a failure.
    /// </summary>
    /// <param name="replay">The caller's tensors, one per MoE layer.</param>
    /// <param name="layers">The decoder-layer index of each MoE layer (for messages).</param>
    /// <param name="tokens">N = B·T of the forward.</param>
    /// <param name="topK">k of the MoE layers.</param>
    /// <param name="experts">E.</param>
    /// <param name="real">Real tokens (N) bool, or null when every token is real.</param>
    /// <param name="device">The input's device.</param>
    /// <exception cref="ArgumentException">A wrong count, shape, dtype or device, or an expert out of range or repeated within a real token.</exception>
    internal static Tensor[] Prepare(IReadOnlyList<Tensor> replay, IReadOnlyList<int> layers, long tokens, int topK, int experts, Tensor? real, Device device)
    {
        const string name = nameof(CausalLMInput.RoutingReplay);
        if (replay.Count != layers.Count)
            throw new ArgumentException($"{name} has {replay.Count} tensors; the model has {layers.Count} MoE layers (one tensor each, in the order of CausalLMOutput.Routing).", name);
        for (int m = 0; m < replay.Count; m++)
        {
            var r = replay[m];
            string at = $"{name}[{m}] (layer {layers[m]})";
            if (r is null) throw new ArgumentException($"{at} is null.", name);
            if (r.dim() != 2 || r.size(0) != tokens || r.size(1) != topK)
                throw new ArgumentException($"{at} must be (B·T = {tokens}, k = {topK}); got shape [{string.Join(", ", r.shape)}].", name);
            if (r.dtype != ScalarType.Int64) throw new ArgumentException($"{at} must be int64; got {r.dtype}.", name);
            if (r.device_type != device.type || r.device_index != device.index)
                throw new ArgumentException($"{at} is on {r.device}, InputIds on {device}: put both on the model's device.", name);
        }

        using var scope = torch.NewDisposeScope();
        var invalid = replay.Select(r => InvalidTokens(r, experts, real)).ToArray();           // M × (N) bool
        bool[] bad = torch.stack(invalid.Select(i => i.any()).ToArray()).cpu().data<bool>().ToArray(); // (M): the one host read
        int first = Array.IndexOf(bad, true);
        if (first >= 0)
        {
            long token = invalid[first].nonzero()[0, 0].item<long>();
            long[] chosen = replay[first][token].cpu().data<long>().ToArray();
            throw new ArgumentException($"{name}[{first}] (layer {layers[first]}): token {token} has experts [{string.Join(", ", chosen)}]; each must be in [0, {experts}) and distinct within a token.", name);
        }

        if (real is null) return replay.Select(r => r.alias().MoveToOuterDisposeScope()).ToArray();
        var filler = torch.arange(topK, dtype: ScalarType.Int64, device: real.device).unsqueeze(0); // (1, k): distinct, in range
        var keep = real.unsqueeze(1);                                                                 // (N, 1)
        return replay.Select(r => torch.where(keep, r, filler).MoveToOuterDisposeScope()).ToArray(); // M × (N, k)
    }

    /// <summary>Real tokens (N) whose forced experts are out of [0, E) or repeat one (k distinct experts per token, as top-k picks).</summary>
    private static Tensor InvalidTokens(Tensor forced, int experts, Tensor? real)
    {
        long k = forced.size(1);
        var outside = (forced.lt(0) | forced.ge(experts)).any(-1);                                  // (N)
        var sorted = forced.sort(-1).Values;                                                        // (N, k)
        var repeated = sorted.narrow(1, 1, k - 1).eq(sorted.narrow(1, 0, k - 1)).any(-1);           // (N): neighbours equal after sorting
        var invalid = outside | repeated;                                                           // (N)
        return real is null ? invalid : invalid & real;
    }
}
