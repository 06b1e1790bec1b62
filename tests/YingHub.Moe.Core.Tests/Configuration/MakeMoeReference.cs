using TorchSharp;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace YingHub.Moe.Core.Tests.Configuration;

/// <summary>
/// makeMoE's <c>SparseMoELanguageModel.forward</c> (AviSoori1x/makeMoE, makeMoE.py), transcribed class by class and line
/// by line in plain TorchSharp ops (no library module), reading its weights from a library model's parameters by key:
/// makeMoE's per-head <c>key</c>/<c>query</c>/<c>value</c> Linears are column blocks of the fused <c>qkv_proj</c> (stored
/// input-major, (C, 3C): q heads, then k heads, then v heads), <c>proj</c> is <c>o_proj</c>, expert e's <c>net[0]</c> and
/// <c>net[2]</c> are slice e of the stacked <c>fc1</c>/<c>fc2</c>, <c>topkroute_linear</c> is <c>gate</c> and
/// <c>noise_linear</c> is <c>gate.noise</c>. The weights are views of the parameters, so a backward through this forward
/// reaches them. Dropout is left out (the tests run with p = 0 or in evaluation); router noise runs only when asked
/// (makeMoE draws it in evaluation too, which makes its evaluation loss random).
/// </summary>
internal sealed class MakeMoeReference
{
    private readonly Dictionary<string, Tensor> _p;
    private readonly int _nEmbed, _nHead, _nLayer, _numExperts, _topK;
    private const double CapacityFactor = 1.0; // SparseMoE(..., capacity_factor=1.0), as Block builds it

    public MakeMoeReference(MoeForCausalLM model)
    {
        _p = model.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var o = model.Options;
        (_nEmbed, _nHead, _nLayer, _numExperts, _topK) = (o.HiddenSize, o.NumHeads, o.NumLayers, o.NumExperts, o.TopK);
    }

    private int HeadSize => _nEmbed / _nHead; // Block: head_size = n_embed // n_head

    // ---- weights in makeMoE's nn.Linear layout (out, in) ----
    private Tensor Qkv(int layer, int part, int head) => // part 0 query, 1 key, 2 value: (head_size, n_embed)
        _p[$"layers.{layer}.self_attn.qkv_proj.weight"].narrow(1, part * _nEmbed + head * HeadSize, HeadSize).t();

    /// <summary>class Head: one head of self-attention.</summary>
    private Tensor Head(int layer, int head, Tensor x)
    {
        long c = x.size(2);                                                  // B,T,C = x.shape
        long t = x.size(1);
        var k = F.linear(x, Qkv(layer, 1, head));                            // k = self.key(x)   (bias=False)
        var q = F.linear(x, Qkv(layer, 0, head));                            // q = self.query(x) (bias=False)
        var wei = q.matmul(k.transpose(-2, -1)) * Math.Pow(c, -0.5);         // wei = q @ k.transpose(-2,-1) * C**-0.5
        var tril = torch.tril(torch.ones(t, t));                             // self.tril[:T, :T]
        wei = wei.masked_fill(tril.eq(0), double.NegativeInfinity);          // wei.masked_fill(self.tril[:T, :T] == 0, float('-inf'))
        wei = F.softmax(wei, -1);                                            // F.softmax(wei, dim=-1); dropout(wei): p = 0
        var v = F.linear(x, Qkv(layer, 2, head));                            // v = self.value(x)
        return wei.matmul(v);                                                // out = wei @ v
    }

    /// <summary>class MultiHeadAttention.</summary>
    private Tensor MultiHeadAttention(int layer, Tensor x)
    {
        var @out = torch.cat(Enumerable.Range(0, _nHead).Select(h => Head(layer, h, x)).ToList(), -1); // torch.cat([h(x) for h in self.heads], dim=-1)
        return F.linear(@out, _p[$"layers.{layer}.self_attn.o_proj.weight"].t(), _p[$"layers.{layer}.self_attn.o_proj.bias"]); // self.dropout(self.proj(out))
    }

    /// <summary>class Expert: Linear(n_embed, 4 n_embed), ReLU, Linear(4 n_embed, n_embed), Dropout.</summary>
    private Tensor Expert(int layer, int e, Tensor x)
    {
        string p = $"layers.{layer}.block_sparse_moe.experts.";
        var h = F.relu(F.linear(x, _p[p + "fc1.weight"][e].t(), _p[p + "fc1.bias"][e]));
        return F.linear(h, _p[p + "fc2.weight"][e].t(), _p[p + "fc2.bias"][e]);
    }

    /// <summary>class NoisyTopkRouter.</summary>
    private (Tensor RouterOutput, Tensor Indices) NoisyTopkRouter(int layer, Tensor mhOutput, bool noise)
    {
        string p = $"layers.{layer}.block_sparse_moe.gate.";
        var logits = F.linear(mhOutput, _p[p + "weight"], _p[p + "bias"]);              // self.topkroute_linear(mh_output)
        var noiseLogits = F.linear(mhOutput, _p[p + "noise.weight"], _p[p + "noise.bias"]); // self.noise_linear(mh_output)
        var noisyLogits = logits;
        if (noise) noisyLogits = logits + torch.randn_like(logits) * F.softplus(noiseLogits); // logits + randn_like(logits)*softplus(noise_logits)
        var (topKLogits, indices) = noisyLogits.topk(_topK, dim: -1);                    // noisy_logits.topk(self.top_k, dim=-1)
        var zeros = torch.full_like(noisyLogits, double.NegativeInfinity);                  // torch.full_like(noisy_logits, float('-inf'))
        var sparseLogits = zeros.scatter(-1, indices, topKLogits);                          // zeros.scatter(-1, indices, top_k_logits)
        return (F.softmax(sparseLogits, -1), indices);                                      // F.softmax(sparse_logits, dim=-1), indices
    }

    /// <summary>class SparseMoE (with expert capacity).</summary>
    private Tensor SparseMoE(int layer, Tensor x, bool noise)
    {
        long batchSize = x.size(0), seqLen = x.size(1);                      // batch_size, seq_len, _ = x.shape
        var (gatingOutput, indices) = NoisyTopkRouter(layer, x, noise);      // self.router(x)
        var finalOutput = torch.zeros_like(x);
        var flatX = x.view(-1, x.size(-1));                                  // x.view(-1, x.size(-1))
        var flatGatingOutput = gatingOutput.view(-1, gatingOutput.size(-1));
        long tokensPerBatch = batchSize * seqLen * _topK;                    // batch_size * seq_len * self.top_k
        long expertCapacity = (long)((double)tokensPerBatch / _numExperts * CapacityFactor); // int((tokens_per_batch / self.num_experts) * self.capacity_factor)
        var updates = torch.zeros_like(flatX);
        for (int i = 0; i < _numExperts; i++)
        {
            var expertMask = indices.eq(i).any(-1);                          // (indices == i).any(dim=-1)
            var flatMask = expertMask.view(-1);
            var selectedIndices = torch.nonzero(flatMask).squeeze(-1);       // torch.nonzero(flat_mask).squeeze(-1)
            var limitedIndices = selectedIndices.numel() > expertCapacity ? selectedIndices[..(int)expertCapacity] : selectedIndices; // selected_indices[:expert_capacity]
            if (limitedIndices.numel() > 0)
            {
                var expertInput = flatX.index_select(0, limitedIndices);     // flat_x[limited_indices]
                var expertOutput = Expert(layer, i, expertInput);
                var gatingScores = flatGatingOutput.index_select(0, limitedIndices).select(1, i).unsqueeze(1); // flat_gating_output[limited_indices, i].unsqueeze(1)
                var weightedOutput = expertOutput * gatingScores;
                updates = updates.index_add(0, limitedIndices, weightedOutput, 1); // updates.index_add_(0, limited_indices, weighted_output)
            }
        }

        return finalOutput + updates.view(batchSize, seqLen, -1);            // final_output += updates.view(batch_size, seq_len, -1)
    }

    private Tensor LayerNorm(string name, Tensor x) =>
        F.layer_norm(x, [_nEmbed], _p[name + ".weight"], _p[name + ".bias"], 1e-5); // nn.LayerNorm(n_embed): eps 1e-5

    /// <summary>class Block: x = x + self.sa(self.ln1(x)); x = x + self.smoe(self.ln2(x)).</summary>
    private Tensor Block(int layer, Tensor x, bool noise)
    {
        x = x + MultiHeadAttention(layer, LayerNorm($"layers.{layer}.input_layernorm", x));
        return x + SparseMoE(layer, LayerNorm($"layers.{layer}.post_attention_layernorm", x), noise);
    }

    /// <summary>SparseMoELanguageModel.forward: logits (B, T, V) and, with targets, the mean cross-entropy.</summary>
    public (Tensor Logits, Tensor? Loss) Forward(Tensor idx, Tensor? targets = null, bool noise = false)
    {
        long b = idx.size(0), t = idx.size(1);                                                  // B, T = idx.shape
        var tokEmb = _p["embed_tokens.weight"].index_select(0, idx.reshape(-1)).view(b, t, _nEmbed); // self.token_embedding_table(idx)
        var posEmb = _p["embed_positions.weight"].index_select(0, torch.arange(t));              // self.position_embedding_table(torch.arange(T))
        var x = tokEmb + posEmb;                                                                 // tok_emb + pos_emb
        for (int layer = 0; layer < _nLayer; layer++) x = Block(layer, x, noise);                // self.blocks(x)
        x = LayerNorm("norm", x);                                                                // self.ln_f(x)
        var logits = F.linear(x, _p["lm_head.weight"], _p["lm_head.bias"]);                      // self.lm_head(x)
        if (targets is null) return (logits, null);
        var loss = F.cross_entropy(logits.view(b * t, -1), targets.view(b * t));                 // F.cross_entropy(logits.view(B*T, C), targets.view(B*T))
        return (logits, loss);
    }
}
