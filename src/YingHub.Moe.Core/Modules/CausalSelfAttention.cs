using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Core.Precision;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// Causal multi-head self-attention with one fused QKV projection and <c>scaled_dot_product_attention</c>; optional
/// rotary positions and a KV cache for incremental decoding. With grouped-query attention
/// (<see cref="MoeModelOptions.NumKeyValueHeads"/>) the projection gives nh query heads and nkv key and value heads,
/// the cache holds the nkv heads, and each key/value head serves nh / nkv consecutive query heads (HF's <c>repeat_kv</c>).
/// </summary>
internal sealed class CausalSelfAttention : nn.Module
{
    [ComponentName(Name = "qkv_proj")] private readonly InputMajorLinear _qkv; // C -> (nh + 2 nkv) hd (3C without GQA), weight (C, (nh + 2 nkv) hd): q, k, v
    [ComponentName(Name = "o_proj")] private readonly InputMajorLinear _out;   // C -> C, weight (C, C)
    private readonly int _heads;
    private readonly int _kvHeads;
    private readonly int _headDim;
    private readonly double _attnDropout;
    private readonly double _residDropout;
    private readonly double? _queryScale; // null for the standard 1/√hd; else what turns libtorch's 1/√hd into the rule's scale
    private readonly float _scoreScale;   // the rule's scale, for the managed decoding kernel

    public CausalSelfAttention(MoeModelOptions options) : base(nameof(CausalSelfAttention))
    {
        int c = options.HiddenSize;
        _heads = options.NumHeads;
        _kvHeads = options.KeyValueHeads;
        _headDim = options.HeadDim;
        _attnDropout = options.AttentionDropout;
        _qkv = new InputMajorLinear(c, (_heads + 2 * _kvHeads) * _headDim, options.HasQkvBias, options);
        _out = new InputMajorLinear(c, c, options.HasAttentionOutputBias, options, residual: true);
        _residDropout = options.Dropout;
        // scaled_dot_product_attention in TorchSharp 0.107 takes no scale and always uses 1/√hd: another rule multiplies
        // the queries by √hd · scale first (decided here, so the standard rule costs nothing per call)
        if (options.AttentionScale == AttentionScaleRule.HiddenSize)
        {
            _queryScale = Math.Sqrt((double)_headDim / c);
            _scoreScale = 1f / MathF.Sqrt(c);
        }
        else
        {
            _scoreScale = 1f / MathF.Sqrt(_headDim);
        }

        RegisterComponents();
    }

    /// <summary>
    /// x: (B, T, C) → (B, T, C). With a cache, T new positions follow the cached ones. With <paramref name="forwardMask"/>
    /// (padding or a prefix), each query sees the keys it allows: pad positions attend to nothing (their output is zero)
    /// and are attended by nothing, rotary positions count real tokens only, and a prefix attends to itself both ways;
    /// without it, the causal fast path.
    /// </summary>
    public Tensor Forward(Tensor x, RotaryEmbedding? rope, KvCache? cache, int layer, ForwardMask? forwardMask = null)
    {
        using var scope = torch.NewDisposeScope();
        long b = x.size(0), t = x.size(1), c = x.size(2);
        long start = cache?.Length ?? 0;
        var fused = _qkv.call(x); // (B, T, (nh + 2 nkv) hd)
        if (cache is not null && !training && forwardMask is null)
        {
            // one sequence's decoding step (one position) in inference on the CPU: the attention over the cache runs in managed code
            var (keys, values) = cache.Buffers(layer);
            var tables = rope?.Tables(x);
            if (AttentionRow.Applies(fused, keys, values, start, tables, _heads))
                return _out.call(AttentionRow.Attend(fused, keys, values, start, tables, _scoreScale, _heads)).MoveToOuterDisposeScope(); // (B, 1, C); dropout is off in evaluation
        }

        var (q, k, v) = SplitHeads(fused, b, t);                                          // (B, nh, T, hd), (B, nkv, T, hd) × 2
        if (rope is not null)
        {
            q = forwardMask is null ? rope.Apply(q, start) : rope.Apply(q, forwardMask.Positions);
            k = forwardMask is null ? rope.Apply(k, start) : rope.Apply(k, forwardMask.Positions);
        }

        if (_queryScale is { } qs) q = q * qs; // (B, nh, T, hd): the scores q·k/√hd become q·k · scale

        Tensor? mask = forwardMask?.Allowed; // (B, 1, T, S)
        bool causal = forwardMask is null;
        if (cache is not null)
        {
            (k, v) = cache.Append(layer, k, v); // (B, nkv, start + T, hd)
            if (start > 0 && forwardMask is null)
            {
                // libtorch's is_causal aligns the mask top-left; with cached keys the queries are the last T positions.
                causal = false;
                if (t > 1)
                {
                    var qPos = torch.arange(start, start + t, device: x.device).unsqueeze(1); // (T, 1)
                    var kPos = torch.arange(start + t, device: x.device).unsqueeze(0);        // (1, start + T)
                    mask = kPos <= qPos;                                                       // (T, start + T)
                }
            }
        }

        k = RepeatKv(k); // (B, nh, S, hd)
        v = RepeatKv(v); // (B, nh, S, hd)
        double p = training ? _attnDropout : 0.0;
        // on CPU, libtorch's SDPA with dropout runs unfused math with a slow mask draw (DropoutAttention says more);
        // on other devices its fused kernels apply the dropout themselves
        var y = p > 0 && q.device_type == DeviceType.CPU
            ? DropoutAttention(q, k, v, start, p, forwardMask?.Allowed)                            // (B, nh, T, hd)
            : nn.functional.scaled_dot_product_attention(q, k, v, mask, p, causal && t > 1); // (B, nh, T, hd)
        if (forwardMask is not null) y = y * (y.dtype == ScalarType.Float32 ? forwardMask.QueryReal : forwardMask.QueryReal.to(y.dtype)); // (B, nh, T, hd): pad queries attend to nothing
        y = y.transpose(1, 2).reshape(b, t, c);                                               // (B, T, C)
        return Regularization.Dropout(_out.call(y), _residDropout, training).MoveToOuterDisposeScope();
    }

    /// <summary>The fused projection (B, T, (nh + 2 nkv) hd) as q (B, nh, T, hd), k and v (B, nkv, T, hd).</summary>
    private (Tensor Q, Tensor K, Tensor V) SplitHeads(Tensor fused, long b, long t)
    {
        if (_kvHeads == _heads)
        {
            var qkv = fused.view(b, t, 3, _heads, _headDim).permute(2, 0, 3, 1, 4).unbind(0); // 3 × (B, nh, T, hd)
            return (qkv[0], qkv[1], qkv[2]);
        }

        long qWidth = (long)_heads * _headDim, kvWidth = (long)_kvHeads * _headDim;
        var q = fused.narrow(2, 0, qWidth).view(b, t, _heads, _headDim).transpose(1, 2);              // (B, nh, T, hd)
        var k = fused.narrow(2, qWidth, kvWidth).view(b, t, _kvHeads, _headDim).transpose(1, 2);      // (B, nkv, T, hd)
        var v = fused.narrow(2, qWidth + kvWidth, kvWidth).view(b, t, _kvHeads, _headDim).transpose(1, 2); // (B, nkv, T, hd)
        return (q, k, v);
    }

    /// <summary>
    /// Hugging Face's <c>repeat_kv</c>: (B, nkv, S, hd) → (B, nh, S, hd), key/value head g repeated for the nh / nkv
    /// query heads g·rep … g·rep + rep − 1 of its group. Without GQA, the input itself.
    /// </summary>
    private Tensor RepeatKv(Tensor x)
    {
        if (_kvHeads == _heads) return x;
        long b = x.size(0), s = x.size(2);
        int rep = _heads / _kvHeads;
        return x.unsqueeze(2).expand(b, _kvHeads, rep, s, _headDim).reshape(b, _heads, s, _headDim); // (B, nh, S, hd)
    }

    /// <summary>
    /// Causal attention with dropout on the attention probabilities: <c>dropout(softmax(q kᵀ / √hd + bias)) v</c>, the
    /// bias −∞ where a key comes after its query (queries at positions start..start+T−1, keys at 0..S−1). This is what
    /// <c>scaled_dot_product_attention</c> computes with <c>dropout_p &gt; 0</c>; on CPU libtorch then leaves its fused
    /// kernel for this same unfused math, drawing the mask with <c>bernoulli_</c>, the slow part. With the library's
    /// dropout a training step of this attention is about twice as fast (docs/benchmarks.md). The product q kᵀ runs in
    /// the inputs' type (bfloat16 under autocast); the mask, softmax and dropout in fp32. q (B, nh, T, hd), k and v
    /// (B, nh, S, hd) → (B, nh, T, hd). With <paramref name="allowed"/> (B, 1, T, S) the bias is −∞ wherever it is
    /// false instead (a <see cref="ForwardMask"/>).
    /// </summary>
    internal static Tensor DropoutAttention(Tensor q, Tensor k, Tensor v, long start, double p, Tensor? allowed = null)
    {
        using var scope = torch.NewDisposeScope();
        long b = q.size(0), nh = q.size(1), t = q.size(2), s = k.size(2), hd = q.size(3);
        // The products run as 3-D bmm over contiguous (B·nh, ·, hd) operands with kᵀ as a view: libtorch's CPU bmm is
        // fast on that layout, while a 4-D matmul of the heads' strided views folds kᵀ into a contiguous copy and takes a
        // float32 path many times slower (docs/benchmarks.md, "bf16 training that uses the hardware").
        var q3 = (q * (1.0 / Math.Sqrt(hd))).reshape(b * nh, t, hd);                               // (B·nh, T, hd), scaled on the small side
        var k3 = k.reshape(b * nh, s, hd);                                                           // (B·nh, S, hd)
        var v3 = v.reshape(b * nh, s, hd);                                                           // (B·nh, S, hd)
        var scores = torch.bmm(q3, k3.transpose(1, 2)).view(b, nh, t, s);                            // (B, nh, T, S)
        if (scores.dtype != ScalarType.Float32) scores = scores.to(ScalarType.Float32);
        var hidden = allowed?.logical_not()                                                          // (B, 1, T, S)
            ?? torch.arange(s, device: q.device).unsqueeze(0) > torch.arange(start, start + t, device: q.device).unsqueeze(1); // (T, S): the future
        var bias = torch.zeros(hidden.shape, device: q.device).masked_fill_(hidden, double.NegativeInfinity); // 0 or −∞
        var probs = Regularization.Dropout(scores.add_(bias).softmax(-1), p, training: true);         // (B, nh, T, S)
        return torch.bmm(probs.to(v.dtype).view(b * nh, t, s), v3).view(b, nh, t, hd).MoveToOuterDisposeScope(); // (B, nh, T, hd)
    }
}
