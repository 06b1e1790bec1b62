using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Interop;

/// <summary>What <see cref="Gpt2Upcycling.Initialize"/> copied and what it left at initialisation, by key.</summary>
/// <param name="Copied">MoE keys copied, each with the GPT-2 key it came from.</param>
/// <param name="LeftAtInit">MoE keys left as initialised, each with the reason.</param>
public sealed record UpcyclingReport(IReadOnlyList<(string Key, string Source)> Copied, IReadOnlyList<(string Key, string Reason)> LeftAtInit)
{
    /// <summary>
    /// Where the upcycled model does not compute what GPT-2 computes although weights were copied: a feed-forward
    /// activation that differs from GPT-2's (allowed with <c>allowActivationMismatch</c>), or GPT-2's exact-erf GELU
    /// against the experts' tanh approximation. Empty when the copied blocks compute GPT-2's function.
    /// </summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>
/// Sparse upcycling (Komatsuzaki et al. 2022): initialises a <see cref="MoeForCausalLM"/> from a dense GPT-2 wherever
/// shapes match: token and position embeddings, LayerNorms, attention, and every expert of a MoE layer (and the FFN of a
/// dense layer) from that layer's dense MLP (GPT-2's Conv1D weights and the library's projection weights are both
/// input-major, (in, out): copied as they are). Deep experts,
/// SwiGLU experts, routers and layers beyond GPT-2's depth have no dense counterpart and stay at their initialisation;
/// the report lists each key either way.
/// <para>
/// GPT-2's MLP applies GELU. Copied into ReLU experts, its weights compute another function, and the upcycled model
/// starts far from GPT-2 rather than at it, which defeats upcycling. So a model whose feed-forward activation is ReLU
/// is refused by default, with a message naming both activations; pass <c>allowActivationMismatch: true</c> to copy
/// the weights anyway (as a better-than-random start), and the report's <see cref="UpcyclingReport.Warnings"/> says
/// so. GPT-2's exact GELU (<c>activation_function = "gelu"</c>) against the experts' tanh approximation differs by at
/// most 1e-3 per activation: copied without asking, with a warning in the report.
/// </para>
/// </summary>
public static class Gpt2Upcycling
{
    /// <summary>Copies what matches from <paramref name="gpt2"/> into <paramref name="model"/>.</summary>
    /// <param name="model">The MoE model to initialise.</param>
    /// <param name="gpt2">The dense GPT-2 to copy from.</param>
    /// <param name="allowActivationMismatch">Copy the MLP weights into ReLU experts and dense FFNs even though GPT-2 uses GELU (reported as a warning).</param>
    /// <exception cref="ArgumentException">The model's feed-forward activation is ReLU (GPT-2's is GELU) and <paramref name="allowActivationMismatch"/> is false.</exception>
    public static UpcyclingReport Initialize(MoeForCausalLM model, Gpt2LMHeadModel gpt2, bool allowActivationMismatch = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(gpt2);
        var warnings = new List<string>();
        string gpt2Activation = $"GPT-2's MLP activation is GELU (activation_function = '{gpt2.Config.Activation}')";
        switch (model.Options.Activation)
        {
            case ExpertActivation.Relu when !allowActivationMismatch:
                throw new ArgumentException(
                    $"The MoE model's feed-forward activation is Relu but {gpt2Activation}: the copied MLP weights would compute a "
                    + "different function. Build the model with Activation = Gelu, or pass allowActivationMismatch: true to copy them anyway.",
                    nameof(model));
            case ExpertActivation.Relu:
                warnings.Add($"The MLP weights were copied into Relu experts and FFNs, but {gpt2Activation}: the upcycled model does not compute GPT-2's function.");
                break;
            case ExpertActivation.Gelu when gpt2.Config.Activation == "gelu":
                warnings.Add($"{gpt2Activation}, exact (erf); the experts use the tanh approximation (gelu_new): activations differ by less than 1e-3.");
                break;
        }

        using var scope = torch.NewDisposeScope();
        var source = gpt2.state_dict();
        var target = model.state_dict();
        var candidates = new Dictionary<string, (string Source, Func<long[], Tensor?> Make)>();

        void Map(string key, string from)
        {
            if (!source.TryGetValue(from, out var t)) return;
            candidates[key] = (from, shape =>
            {
                if (shape.Length == t.dim() + 1 && shape[1..].SequenceEqual(t.shape)) return t.unsqueeze(0).expand(shape); // every stacked expert
                if (shape.Length == 2 && t.dim() == 2 && shape[1] == t.shape[1] && shape[0] <= t.shape[0] && from == "wpe.weight") return t[..(int)shape[0]]; // fewer positions
                return t.shape.SequenceEqual(shape) ? t : null;
            });
        }

        MoeModelOptions o = model.Options;
        Map("embed_tokens.weight", "wte.weight");
        Map("embed_positions.weight", "wpe.weight");
        Map("norm.weight", "ln_f.weight");
        Map("norm.bias", "ln_f.bias");
        if (!o.TieWordEmbeddings) Map("lm_head.weight", "wte.weight");
        for (int i = 0; i < o.NumLayers; i++)
        {
            string l = $"layers.{i}.", h = $"h.{i}.";
            foreach (var p in new[] { "weight", "bias" })
            {
                Map(l + "input_layernorm." + p, h + "ln_1." + p);
                Map(l + "post_attention_layernorm." + p, h + "ln_2." + p);
            }

            Map(l + "self_attn.qkv_proj.weight", h + "attn.c_attn.weight");
            Map(l + "self_attn.qkv_proj.bias", h + "attn.c_attn.bias");
            Map(l + "self_attn.o_proj.weight", h + "attn.c_proj.weight");
            Map(l + "self_attn.o_proj.bias", h + "attn.c_proj.bias");
            if (o.Activation == ExpertActivation.SwiGlu) continue; // a gated FFN has no dense GELU counterpart
            foreach (string ffn in new[] { "block_sparse_moe.experts.", "block_sparse_moe.shared_expert.ffn.", "mlp.ffn." })
            {
                Map(l + ffn + "fc1.weight", h + "mlp.c_fc.weight");   // GPT-2's Conv1D is input-major, as our FFN weights
                Map(l + ffn + "fc1.bias", h + "mlp.c_fc.bias");
                Map(l + ffn + "fc2.weight", h + "mlp.c_proj.weight");
                Map(l + ffn + "fc2.bias", h + "mlp.c_proj.bias");
            }
        }

        var copied = new List<(string, string)>();
        var left = new List<(string, string)>();
        using (torch.no_grad())
        {
            foreach (var (key, tensor) in target)
            {
                if (key.Contains(".utilization.", StringComparison.Ordinal)) continue; // routing statistics, not weights
                if (o.TieWordEmbeddings && key == "lm_head.weight") continue;          // the same parameter as embed_tokens
                if (!candidates.TryGetValue(key, out var c))
                {
                    left.Add((key, "no dense GPT-2 counterpart"));
                    continue;
                }

                var value = c.Make(tensor.shape);
                if (value is null)
                {
                    left.Add((key, $"shape [{string.Join(", ", tensor.shape)}] differs from {c.Source} [{string.Join(", ", source[c.Source].shape)}]"));
                    continue;
                }

                tensor.copy_(value);
                copied.Add((key, c.Source));
            }
        }

        return new UpcyclingReport(copied, left) { Warnings = warnings };
    }
}
