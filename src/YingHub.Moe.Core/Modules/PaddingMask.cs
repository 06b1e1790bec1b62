using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// Attention over a batch with padding (or over a KV cache that holds padding), built once per forward and shared by
/// every layer. A pad position attends to nothing and is attended by nothing: real queries see the real keys at or
/// before them; a pad query is also given its own key (so its softmax stays finite whatever precedes it) and its
/// attention output is then zeroed.
/// Positions count real tokens only, so a left-padded row is embedded exactly as the same row alone.
/// Owned by the forward's dispose scope.
/// </summary>
/// <param name="Allowed">Which key each query may attend to (B, 1, T, S), bool, S = cached + T positions.</param>
/// <param name="QueryReal">1 for real queries, 0 for padding (B, 1, T, 1), float32.</param>
/// <param name="RealTokens">Real tokens among the new positions (B, T), bool.</param>
/// <param name="Positions">Position of each new token (B, T), int64: real tokens before it in its row (the cache's included).</param>
internal sealed record PaddingMask(Tensor Allowed, Tensor QueryReal, Tensor RealTokens, Tensor Positions)
{
    /// <summary>
    /// The mask of <paramref name="t"/> new positions whose real tokens are <paramref name="real"/> (B, T) bool (null:
    /// all real), following what <paramref name="cache"/> (if any) already holds.
    /// </summary>
    public static PaddingMask Build(Tensor? real, long batch, long t, KvCache? cache, Device device)
    {
        long start = cache?.Length ?? 0, s = start + t;
        real ??= torch.ones(batch, t, dtype: ScalarType.Bool, device: device);                                // (B, T)
        var keyReal = start == 0 ? real : torch.cat([cache!.RealKeys(device), real], 1);                       // (B, S)
        var queryPos = torch.arange(start, s, device: device).unsqueeze(1);                                   // (T, 1)
        var keyPos = torch.arange(s, device: device).unsqueeze(0);                                            // (1, S)
        var allowed = (keyPos <= queryPos).unsqueeze(0) & keyReal.unsqueeze(1);                               // (B, T, S)
        allowed = allowed | (keyPos == queryPos).unsqueeze(0);                                                // (B, T, S): a pad query sees itself
        var offset = torch.tensor(cache?.RealTokenCounts() ?? new long[batch], device: device).unsqueeze(1);  // (B, 1)
        var positions = (real.to(ScalarType.Int64).cumsum(1) - 1).clamp_min(0) + offset;                     // (B, T)
        var queryReal = real.unsqueeze(1).unsqueeze(-1).to(ScalarType.Float32);                             // (B, 1, T, 1)
        return new PaddingMask(allowed.unsqueeze(1), queryReal, real, positions);                             // (B, 1, T, S)
    }
}
