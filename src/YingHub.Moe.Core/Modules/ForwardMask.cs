using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// Which keys each query of one forward may attend to, when that is not plain causal attention over real tokens:
/// a batch with padding (or a KV cache that holds padding), or a prefix-LM batch. Built once per forward and shared by
/// every layer; owned by the forward's dispose scope.
/// <list type="bullet">
/// <item>Padding: a pad position attends to nothing and is attended by nothing: real queries see the real keys at or
/// before them; a pad query is also given its own key (so its softmax stays finite whatever precedes it) and its
/// attention output is then zeroed. Positions count real tokens only, so a left-padded row is embedded exactly as the
/// same row alone.</item>
/// <item>Prefix: the first P_b columns of row b attend to each other in both directions (a query in the prefix also
/// sees the prefix keys after it); every later query sees the keys at or before it, the whole prefix included. P = 0
/// is causal attention.</item>
/// </list>
/// </summary>
/// <param name="Allowed">Which key each query may attend to (B, 1, T, S), bool, S = cached + T positions.</param>
/// <param name="QueryReal">1 for real queries, 0 for padding (B, 1, T, 1), float32.</param>
/// <param name="RealTokens">Real tokens among the new positions (B, T), bool.</param>
/// <param name="Positions">Position of each new token (B, T), int64: real tokens before it in its row (the cache's included).</param>
internal sealed record ForwardMask(Tensor Allowed, Tensor QueryReal, Tensor RealTokens, Tensor Positions)
{
    /// <summary>
    /// The mask of <paramref name="t"/> new positions whose real tokens are <paramref name="real"/> (B, T) bool (null:
    /// all real), following what <paramref name="cache"/> (if any) already holds, with bidirectional prefixes of
    /// <paramref name="prefixLength"/> (B) int64 columns (null: none; only without cached positions).
    /// </summary>
    public static ForwardMask Build(Tensor? real, long batch, long t, KvCache? cache, Device device, Tensor? prefixLength = null)
    {
        long start = cache?.Length ?? 0, s = start + t;
        real ??= torch.ones(batch, t, dtype: ScalarType.Bool, device: device);                                // (B, T)
        var keyReal = start == 0 ? real : torch.cat([cache!.RealKeys(device), real], 1);                       // (B, S)
        var queryPos = torch.arange(start, s, device: device).unsqueeze(1);                                   // (T, 1)
        var keyPos = torch.arange(s, device: device).unsqueeze(0);                                            // (1, S)
        var visible = (keyPos <= queryPos).unsqueeze(0);                                                      // (1, T, S): causal
        if (prefixLength is not null)
        {
            var inPrefix = prefixLength.view(-1, 1, 1);                                                       // (B, 1, 1)
            visible = visible | ((keyPos.unsqueeze(0) < inPrefix) & (queryPos.unsqueeze(0) < inPrefix));     // (B, T, S): the prefix sees itself
        }

        var allowed = visible & keyReal.unsqueeze(1);                                                         // (B, T, S)
        allowed = allowed | (keyPos == queryPos).unsqueeze(0);                                                // (B, T, S): a pad query sees itself
        var offset = torch.tensor(cache?.RealTokenCounts() ?? new long[batch], device: device).unsqueeze(1);  // (B, 1)
        var positions = (real.to(ScalarType.Int64).cumsum(1) - 1).clamp_min(0) + offset;                     // (B, T)
        var queryReal = real.unsqueeze(1).unsqueeze(-1).to(ScalarType.Float32);                             // (B, 1, T, 1)
        return new ForwardMask(allowed.unsqueeze(1), queryReal, real, positions);                             // (B, 1, T, S)
    }
}
