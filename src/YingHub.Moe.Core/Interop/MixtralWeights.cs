using TorchSharp;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Interop;

/// <summary>
/// The tensor map between the library's state dict (fused input-major <c>qkv_proj</c> (C, (nh + 2 nkv) hd), stacked
/// input-major experts <c>fc1</c> (E, C, 2H: gate then up) and <c>fc2</c> (E, H, C)) and Hugging Face Mixtral's
/// (out, in) tensors (<c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>o_proj</c>, per-expert <c>w1</c> gate,
/// <c>w3</c> up, <c>w2</c> down). Both RoPE conventions are rotate_half over the two halves of a head, so q and k
/// rows are not permuted. Every tensor returned is new (contiguous) and owned by the caller's dispose scope.
/// </summary>
internal static class MixtralWeights
{
    /// <summary>The library's tensors (by state-dict key) as Hugging Face Mixtral names them, in file order.</summary>
    public static List<(string Name, Tensor Tensor)> ToHuggingFace(IReadOnlyDictionary<string, Tensor> state, MoeModelOptions o)
    {
        int qWidth = o.NumHeads * o.HeadDim, kvWidth = o.KeyValueHeads * o.HeadDim, h = o.ExpertWidth;
        var result = new List<(string, Tensor)>();
        Tensor Get(string key) => state.TryGetValue(key, out var t) ? t.detach()
            : throw new InvalidOperationException($"The model has no tensor '{key}' (it does not have the options' layout).");
        void Add(string name, Tensor t) => result.Add((name, t.contiguous()));

        Add("model.embed_tokens.weight", Get("embed_tokens.weight"));                        // (V, C)
        for (int i = 0; i < o.NumLayers; i++)
        {
            string l = $"layers.{i}.";
            Add(MixtralLayout.Layer(i, "input_layernorm.weight"), Get(l + "input_layernorm.weight"));
            var qkv = Get(l + "self_attn.qkv_proj.weight").t();                              // ((nh + 2 nkv) hd, C)
            Add(MixtralLayout.Layer(i, "self_attn.q_proj.weight"), qkv.narrow(0, 0, qWidth)); // (nh hd, C)
            Add(MixtralLayout.Layer(i, "self_attn.k_proj.weight"), qkv.narrow(0, qWidth, kvWidth));          // (nkv hd, C)
            Add(MixtralLayout.Layer(i, "self_attn.v_proj.weight"), qkv.narrow(0, qWidth + kvWidth, kvWidth)); // (nkv hd, C)
            Add(MixtralLayout.Layer(i, "self_attn.o_proj.weight"), Get(l + "self_attn.o_proj.weight").t());  // (C, C)
            Add(MixtralLayout.Layer(i, "post_attention_layernorm.weight"), Get(l + "post_attention_layernorm.weight"));
            Add(MixtralLayout.Layer(i, "block_sparse_moe.gate.weight"), Get(l + "block_sparse_moe.gate.weight")); // (E, C)
            var fc1 = Get(l + "block_sparse_moe.experts.fc1.weight");                        // (E, C, 2H)
            var fc2 = Get(l + "block_sparse_moe.experts.fc2.weight");                        // (E, H, C)
            for (int j = 0; j < o.NumExperts; j++)
            {
                Add(MixtralLayout.Expert(i, j, "w1"), fc1[j].narrow(1, 0, h).t());          // (H, C): gate
                Add(MixtralLayout.Expert(i, j, "w2"), fc2[j].t());                          // (C, H): down
                Add(MixtralLayout.Expert(i, j, "w3"), fc1[j].narrow(1, h, h).t());          // (H, C): up
            }
        }

        Add("model.norm.weight", Get("norm.weight"));
        if (!o.TieWordEmbeddings) Add("lm_head.weight", Get("lm_head.weight"));             // (V, C)
        return result;
    }

    /// <summary>
    /// The library's parameters (by state-dict key, float32) from Hugging Face Mixtral tensors: the classic per-expert
    /// names, or Transformers 5's fused <c>mlp.experts.gate_up_proj</c> (E, 2H, C) and <c>mlp.experts.down_proj</c>
    /// (E, C, H) with <c>mlp.gate.weight</c>.
    /// </summary>
    /// <exception cref="InvalidDataException">A tensor is missing or has the wrong shape; the message names it and the source.</exception>
    public static Dictionary<string, Tensor> FromHuggingFace(IReadOnlyDictionary<string, Tensor> hf, MoeModelOptions o, string source)
    {
        int c = o.HiddenSize, qWidth = o.NumHeads * o.HeadDim, kvWidth = o.KeyValueHeads * o.HeadDim, h = o.ExpertWidth, e = o.NumExperts;
        Tensor Get(string name, params long[] shape)
        {
            if (!hf.TryGetValue(name, out var t)) throw new InvalidDataException($"'{source}': tensor '{name}' is missing.");
            if (!t.shape.SequenceEqual(shape))
                throw new InvalidDataException($"'{source}': tensor '{name}' has shape [{string.Join(", ", t.shape)}]; the configuration needs [{string.Join(", ", shape)}].");
            return t.to(ScalarType.Float32);
        }

        var state = new Dictionary<string, Tensor>(StringComparer.Ordinal)
        {
            ["embed_tokens.weight"] = Get("model.embed_tokens.weight", o.VocabSize, c),
            ["norm.weight"] = Get("model.norm.weight", c),
        };
        if (!o.TieWordEmbeddings) state["lm_head.weight"] = Get("lm_head.weight", o.VocabSize, c);
        for (int i = 0; i < o.NumLayers; i++)
        {
            string l = $"layers.{i}.";
            state[l + "input_layernorm.weight"] = Get(MixtralLayout.Layer(i, "input_layernorm.weight"), c);
            state[l + "post_attention_layernorm.weight"] = Get(MixtralLayout.Layer(i, "post_attention_layernorm.weight"), c);
            var q = Get(MixtralLayout.Layer(i, "self_attn.q_proj.weight"), qWidth, c);       // (nh hd, C)
            var k = Get(MixtralLayout.Layer(i, "self_attn.k_proj.weight"), kvWidth, c);      // (nkv hd, C)
            var v = Get(MixtralLayout.Layer(i, "self_attn.v_proj.weight"), kvWidth, c);      // (nkv hd, C)
            state[l + "self_attn.qkv_proj.weight"] = torch.cat([q, k, v], 0).t().contiguous(); // (C, (nh + 2 nkv) hd)
            state[l + "self_attn.o_proj.weight"] = Get(MixtralLayout.Layer(i, "self_attn.o_proj.weight"), c, qWidth).t().contiguous(); // (C, C) input-major
            bool fused = hf.ContainsKey(MixtralLayout.Layer(i, "mlp.experts.gate_up_proj"));
            state[l + "block_sparse_moe.gate.weight"] = Get(MixtralLayout.Layer(i, fused ? "mlp.gate.weight" : "block_sparse_moe.gate.weight"), e, c);
            if (fused)
            {
                var gateUp = Get(MixtralLayout.Layer(i, "mlp.experts.gate_up_proj"), e, 2 * h, c); // (E, 2H, C): gate rows, then up rows
                state[l + "block_sparse_moe.experts.fc1.weight"] = gateUp.transpose(1, 2).contiguous();                           // (E, C, 2H)
                state[l + "block_sparse_moe.experts.fc2.weight"] = Get(MixtralLayout.Layer(i, "mlp.experts.down_proj"), e, c, h).transpose(1, 2).contiguous(); // (E, H, C)
            }
            else
            {
                var w1 = Enumerable.Range(0, e).Select(j => Get(MixtralLayout.Expert(i, j, "w1"), h, c)).ToList(); // E × (H, C)
                var w3 = Enumerable.Range(0, e).Select(j => Get(MixtralLayout.Expert(i, j, "w3"), h, c)).ToList();
                var w2 = Enumerable.Range(0, e).Select(j => Get(MixtralLayout.Expert(i, j, "w2"), c, h)).ToList(); // E × (C, H)
                state[l + "block_sparse_moe.experts.fc1.weight"] = torch.stack(w1.Zip(w3, (g, u) => torch.cat([g, u], 0).t()), 0).contiguous(); // (E, C, 2H)
                state[l + "block_sparse_moe.experts.fc2.weight"] = torch.stack(w2.Select(w => w.t()), 0).contiguous();                      // (E, H, C)
            }
        }

        return state;
    }
}
