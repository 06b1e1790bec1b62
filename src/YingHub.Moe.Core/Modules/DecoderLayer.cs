using TorchSharp;
using TorchSharp.Utils;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Modules;

/// <summary>
/// One pre-norm transformer block: <c>x + DropPath(attn(norm(x)))</c>, then <c>x + DropPath(ffn(norm(x)))</c>, the FFN
/// being a sparse MoE block or, on interleaved dense layers, a dense FFN.
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

    public DecoderLayer(MoeModelOptions options, int index) : base(nameof(DecoderLayer))
    {
        _index = index;
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
    public (Tensor Hidden, MoeBlockOutput? Moe) Forward(Tensor x, RotaryEmbedding? rope, KvCache? cache, PaddingMask? padding, MoeBlockRequest request)
    {
        x = x + DropPath(_attn.Forward(_attnNorm.call(x), rope, cache, _index, padding)); // (B, T, C)
        var h = _ffnNorm.call(x);                                                          // (B, T, C)
        if (_moe is null) return (x + DropPath(_mlp!.call(h)), null);
        var moe = _moe.Forward(h, request, _index);
        return (x + DropPath(moe.Hidden), moe);                                   // (B, T, C)
    }

    private Tensor DropPath(Tensor branch) => _dropPath.Active ? _dropPath.call(branch) : branch;
}
