using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// Rotary position embedding (Su et al. 2021) in the "rotate half" layout of Hugging Face Llama/Mixtral: cos/sin
/// tables for every position up to the context length, applied to queries and keys. The tables are derived state, not
/// parameters or buffers: they stay out of checkpoints and follow the inputs to their device on first use. They are
/// always made outside inference mode, even when that first use is a generation step: an inference tensor could not be
/// saved for a later training step's backward.
/// </summary>
internal sealed class RotaryEmbedding : IDisposable
{
    private Tensor _cos; // (Tmax, hd)
    private Tensor _sin; // (Tmax, hd)

    public RotaryEmbedding(int headDim, int maxPositions, double theta)
    {
        using var normal = torch.inference_mode(false);
        using var scope = torch.NewDisposeScope();
        var invFreq = 1.0 / torch.pow(theta, torch.arange(0, headDim, 2, dtype: ScalarType.Float64) / headDim); // (hd/2)
        var t = torch.arange(maxPositions, dtype: ScalarType.Float64);                                           // (Tmax)
        var freqs = torch.outer(t, invFreq);                                                                      // (Tmax, hd/2)
        var emb = torch.cat([freqs, freqs], dim: -1);                                                             // (Tmax, hd)
        _cos = emb.cos().to(ScalarType.Float32).DetachFromDisposeScope();
        _sin = emb.sin().to(ScalarType.Float32).DetachFromDisposeScope();
    }

    /// <summary>The cos and sin tables (Tmax, hd) on <paramref name="like"/>'s device (moved there on first use).</summary>
    public (Tensor Cos, Tensor Sin) Tables(Tensor like)
    {
        FollowDevice(like);
        return (_cos, _sin);
    }

    /// <summary>Rotates q or k of shape (B, nh, T, hd) whose first position is <paramref name="start"/>.</summary>
    public Tensor Apply(Tensor x, long start)
    {
        FollowDevice(x);
        using var scope = torch.NewDisposeScope();
        long t = x.size(2);
        var cos = _cos.narrow(0, start, t).to(x.dtype); // (T, hd)
        var sin = _sin.narrow(0, start, t).to(x.dtype); // (T, hd)
        return Rotate(x, cos, sin).MoveToOuterDisposeScope();
    }

    /// <summary>Rotates q or k of shape (B, nh, T, hd) whose tokens sit at <paramref name="positions"/> (B, T), int64 (padded batches).</summary>
    public Tensor Apply(Tensor x, Tensor positions)
    {
        FollowDevice(x);
        using var scope = torch.NewDisposeScope();
        long b = positions.size(0), t = positions.size(1), hd = x.size(3);
        var flat = positions.reshape(-1);                                         // (B*T)
        var cos = _cos.index_select(0, flat).view(b, 1, t, hd).to(x.dtype);       // (B, 1, T, hd)
        var sin = _sin.index_select(0, flat).view(b, 1, t, hd).to(x.dtype);       // (B, 1, T, hd)
        return Rotate(x, cos, sin).MoveToOuterDisposeScope();
    }

    /// <summary>x · cos + rotate_half(x) · sin, the tables broadcast over x (B, nh, T, hd).</summary>
    private static Tensor Rotate(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.size(3) / 2;
        var rotated = torch.cat([-x.narrow(3, half, half), x.narrow(3, 0, half)], dim: -1); // (B, nh, T, hd)
        return x * cos + rotated * sin;
    }

    public void Dispose()
    {
        _cos.Dispose();
        _sin.Dispose();
    }

    // by type and index: Tensor.device makes a new Device per call, and Device compares by reference
    private void FollowDevice(Tensor like)
    {
        if (_cos.device_type != like.device_type || _cos.device_index != like.device_index) MoveTo(like.device);
    }

    private void MoveTo(Device device)
    {
        using var normal = torch.inference_mode(false);
        var (cos, sin) = (_cos.to(device).DetachFromDisposeScope(), _sin.to(device).DetachFromDisposeScope());
        _cos.Dispose();
        _sin.Dispose();
        (_cos, _sin) = (cos, sin);
    }
}
