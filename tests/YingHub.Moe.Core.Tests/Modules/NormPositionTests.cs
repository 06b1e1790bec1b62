using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>
/// Pre-norm (<c>x + f(norm(x))</c>) and post-norm (<c>norm(x + f(x))</c>) blocks: a whole small model against a naive
/// forward written here from its weights (a dense layer, then a MoE layer with one expert, whose gate weight is 1),
/// and cached decoding against a full forward in post-norm.
/// </summary>
public class NormPositionTests
{
    private static MoeModelOptions Options(NormPosition position) => Tiny.Options(o =>
    {
        o.NormPosition = position;
        o.MoeEvery = 2;          // layer 0 dense, layer 1 MoE: both branches of a block
        o.NumExperts = 1;        // one expert, top-1: the MoE layer is that expert with gate weight 1
        o.TopK = 1;
        o.BiasInit = BiasInitScheme.Uniform;
    });

    /// <summary>The naive forward: embeddings, two blocks with the norms where <paramref name="position"/> puts them, final norm, head.</summary>
    private static Tensor Reference(MoeForCausalLM model, Tensor ids, NormPosition position)
    {
        var p = model.named_parameters().ToDictionary(n => n.name, n => (Tensor)n.parameter);
        var o = model.Options;
        int c = o.HiddenSize, heads = o.NumHeads, hd = c / heads;
        long b = ids.size(0), t = ids.size(1);
        Tensor Norm(string name, Tensor x) => F.layer_norm(x, [c], p[name + ".weight"], p[name + ".bias"], o.NormEpsilon);
        Tensor Attention(int layer, Tensor x)
        {
            string a = $"layers.{layer}.self_attn.";
            var qkv = x.matmul(p[a + "qkv_proj.weight"]) + p[a + "qkv_proj.bias"];                 // (B, T, 3C)
            var future = torch.ones(t, t).triu(1).to(ScalarType.Bool);
            var y = torch.cat(Enumerable.Range(0, heads).Select(h =>
            {
                var q = qkv.narrow(-1, h * hd, hd);
                var k = qkv.narrow(-1, c + h * hd, hd);
                var v = qkv.narrow(-1, 2 * c + h * hd, hd);
                return q.matmul(k.transpose(1, 2)).div(Math.Sqrt(hd)).masked_fill(future, double.NegativeInfinity).softmax(-1).matmul(v);
            }).ToList(), -1);                                                                         // (B, T, C)
            return y.matmul(p[a + "o_proj.weight"]) + p[a + "o_proj.bias"];
        }

        Tensor Ffn(string bank, Tensor x) =>                                                          // ReLU FFN, expert 0 of the bank
            (x.matmul(p[bank + "fc1.weight"][0]) + p[bank + "fc1.bias"][0]).relu().matmul(p[bank + "fc2.weight"][0]) + p[bank + "fc2.bias"][0];

        var hidden = p["embed_tokens.weight"].index_select(0, ids.reshape(-1)).view(b, t, c) + p["embed_positions.weight"].narrow(0, 0, t);
        for (int layer = 0; layer < 2; layer++)
        {
            string l = $"layers.{layer}.";
            string bank = layer == 0 ? l + "mlp.ffn." : l + "block_sparse_moe.experts.";
            if (position == NormPosition.Pre)
            {
                hidden = hidden + Attention(layer, Norm(l + "input_layernorm", hidden));
                hidden = hidden + Ffn(bank, Norm(l + "post_attention_layernorm", hidden));
            }
            else
            {
                hidden = Norm(l + "input_layernorm", hidden + Attention(layer, hidden));
                hidden = Norm(l + "post_attention_layernorm", hidden + Ffn(bank, hidden));
            }
        }

        return Norm("norm", hidden).matmul(p["lm_head.weight"].t());                                 // (B, T, V)
    }

    [Theory]
    [InlineData(NormPosition.Pre)]
    [InlineData(NormPosition.Post)]
    public void The_block_normalises_where_the_option_says(NormPosition position)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(8);
        using var model = new MoeForCausalLM(Options(position));
        model.eval();
        var ids = torch.tensor(new long[] { 3, 1, 4, 1, 5, 9, 2, 6, 5, 3 }, 2, 5);
        using var _ = torch.no_grad();
        Tiny.AssertClose(Reference(model, ids, position), model.call(new CausalLMInput(ids)).Logits, atol: 2e-5);
    }

    [Fact]
    public void Post_norm_cached_decoding_gives_the_logits_of_a_full_forward()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(9);
        using var model = new MoeForCausalLM(Tiny.Options(o => o.NormPosition = NormPosition.Post)); // 4 experts, top-2
        model.eval();
        long[] ids = [2, 7, 1, 8, 2, 8, 1, 8];
        using var _ = torch.no_grad();
        var full = model.call(new CausalLMInput(torch.tensor(ids, 1, ids.Length))).Logits;
        using var cache = model.CreateCache();
        var first = model.call(new CausalLMInput(torch.tensor(ids[..3], 1, 3), Cache: cache)).Logits; // a prompt, then one token at a time
        var steps = new List<Tensor> { first };
        for (int i = 3; i < ids.Length; i++) steps.Add(model.call(new CausalLMInput(torch.tensor(ids[i..(i + 1)], 1, 1), Cache: cache)).Logits);
        Tiny.AssertClose(full, torch.cat(steps, 1), atol: 1e-4);
    }
}
