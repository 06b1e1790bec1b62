using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// One transformer block, pre-norm: <c>x + DropPath(attn(norm(x)))</c>, then <c>x + DropPath(ffn(norm(x)))</c>; or
/// post-norm (<see cref="NormPosition.Post"/>, the original Transformer's): <c>norm(x + DropPath(attn(x)))</c>, then
/// <c>norm(x + DropPath(ffn(x)))</c>. The FFN is a sparse MoE block or, on interleaved dense layers, a dense FFN. The
/// norms keep their keys in both (<c>input_layernorm</c> belongs to attention, <c>post_attention_layernorm</c> to the FFN).
/// </summary>
internal sealed class DecoderLayer : nn.Module
{
    [ComponentName(Name = "input_layernorm")] private readonly nn.Module<Tensor, Tensor> _attnNorm;
    [ComponentName(Name = "self_attn")] private readonly CausalSelfAttention _attn;
    [ComponentName(Name = "post_attention_layernorm")] private readonly nn.Module<Tensor, Tensor> _ffnNorm;
    [ComponentName(Name = "block_sparse_moe")] private readonly SparseMoeBlock? _moe;
    [ComponentName(Name = "mlp")] private readonly DenseFeedForward? _mlp;
    [ComponentName(Name = "drop_path")] private readonly DropPath _dropPath;
    private readonly int _index;
    private readonly bool _postNorm;

    public DecoderLayer(MoeModelOptions options, int index) : base(nameof(DecoderLayer))
    {
        _index = index;
        _postNorm = options.NormPosition == NormPosition.Post;
        _attnNorm = Norms.Create(options);
        _attn = new CausalSelfAttention(options);
        _ffnNorm = Norms.Create(options);
        if (options.IsMoeLayer(index)) _moe = new SparseMoeBlock(options);
        else _mlp = new DenseFeedForward(options);
        _dropPath = new DropPath(options.StochasticDepth);
        RegisterComponents();
    }

    /// <summary>The MoE block, or null on a dense layer.</summary>
    public SparseMoeBlock? Moe => _moe;

    /// <summary>
    /// x: (B, T, C) → (B, T, C), and on MoE layers what the MoE block returns for <paramref name="request"/>. Runs in
    /// the caller's dispose scope (the model's forward), which owns the intermediates.
    /// </summary>
    public (Tensor Hidden, MoeBlockOutput? Moe) Forward(Tensor x, RotaryEmbedding? rope, KvCache? cache, ForwardMask? forwardMask, MoeBlockRequest request)
    {
        if (_postNorm) return PostNorm(x, rope, cache, forwardMask, request);
        x = x + DropPath(_attn.Forward(_attnNorm.call(x), rope, cache, _index, forwardMask)); // (B, T, C)
        var h = _ffnNorm.call(x);                                                          // (B, T, C)
        if (_moe is null) return (x + DropPath(_mlp!.call(h)), null);
        var moe = _moe.Forward(h, request, _index);
        return (x + DropPath(moe.Hidden), moe);                                   // (B, T, C)
    }

    /// <summary>The post-norm block: each sub-layer reads the stream as it is, and the sum is normalised.</summary>
    private (Tensor Hidden, MoeBlockOutput? Moe) PostNorm(Tensor x, RotaryEmbedding? rope, KvCache? cache, ForwardMask? forwardMask, MoeBlockRequest request)
    {
        x = _attnNorm.call(x + DropPath(_attn.Forward(x, rope, cache, _index, forwardMask))); // (B, T, C)
        if (_moe is null) return (_ffnNorm.call(x + DropPath(_mlp!.call(x))), null);
        var moe = _moe.Forward(x, request, _index);
        return (_ffnNorm.call(x + DropPath(moe.Hidden)), moe);                              // (B, T, C)
    }

    private Tensor DropPath(Tensor branch) => _dropPath.Active ? _dropPath.call(branch) : branch;
}
