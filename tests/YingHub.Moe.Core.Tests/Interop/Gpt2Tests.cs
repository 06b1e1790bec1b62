using System.Text.Json;
using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Interop;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tests.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Interop;

public sealed class Gpt2Tests : IDisposable
{
    private static readonly Gpt2Config Config = new() { VocabSize = 50, Positions = 16, Embedding = 32, Layers = 2, Heads = 4 };
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-gpt2-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Writes random GPT-2 weights in the layout of a Hugging Face GPT2LMHeadModel checkpoint.</summary>
    private Dictionary<string, Tensor> WriteHuggingFaceCheckpoint()
    {
        torch.manual_seed(31);
        int c = Config.Embedding, t = Config.Positions;
        var w = new Dictionary<string, Tensor>
        {
            ["transformer.wte.weight"] = torch.randn(Config.VocabSize, c) * 0.1,
            ["transformer.wpe.weight"] = torch.randn(t, c) * 0.1,
            ["transformer.ln_f.weight"] = 1 + torch.randn(c) * 0.1,
            ["transformer.ln_f.bias"] = torch.randn(c) * 0.1,
        };
        for (int i = 0; i < Config.Layers; i++)
        {
            string h = $"transformer.h.{i}.";
            w[h + "ln_1.weight"] = 1 + torch.randn(c) * 0.1;
            w[h + "ln_1.bias"] = torch.randn(c) * 0.1;
            w[h + "ln_2.weight"] = 1 + torch.randn(c) * 0.1;
            w[h + "ln_2.bias"] = torch.randn(c) * 0.1;
            w[h + "attn.c_attn.weight"] = torch.randn(c, 3 * c) * 0.1; // Conv1D: (in, out)
            w[h + "attn.c_attn.bias"] = torch.randn(3 * c) * 0.1;
            w[h + "attn.c_proj.weight"] = torch.randn(c, c) * 0.1;
            w[h + "attn.c_proj.bias"] = torch.randn(c) * 0.1;
            w[h + "mlp.c_fc.weight"] = torch.randn(c, 4 * c) * 0.1;
            w[h + "mlp.c_fc.bias"] = torch.randn(4 * c) * 0.1;
            w[h + "mlp.c_proj.weight"] = torch.randn(4 * c, c) * 0.1;
            w[h + "mlp.c_proj.bias"] = torch.randn(c) * 0.1;
            w[h + "attn.bias"] = torch.ones(t, t).tril().view(1, 1, t, t); // the causal-mask buffer old checkpoints carry
        }

        w["lm_head.weight"] = w["transformer.wte.weight"];
        Safetensors.Write(Path.Combine(_dir, "model.safetensors"), w);
        File.WriteAllText(Path.Combine(_dir, "config.json"), JsonSerializer.Serialize(Config));
        return w;
    }

    /// <summary>GPT-2's forward written out from the raw tensors: the independent reference.</summary>
    private static Tensor NaiveForward(Dictionary<string, Tensor> w, Tensor ids)
    {
        long t = ids.shape[1];
        int c = Config.Embedding, nh = Config.Heads, hd = c / nh;
        Tensor Ln(Tensor x, string p)
        {
            var mean = x.mean([-1], keepdim: true);
            var variance = (x - mean).pow(2).mean([-1], keepdim: true);
            return (x - mean) / (variance + 1e-5).sqrt() * w[p + ".weight"] + w[p + ".bias"];
        }

        Tensor Gelu(Tensor x) => 0.5 * x * (1 + ((x + 0.044715 * x.pow(3)) * Math.Sqrt(2 / Math.PI)).tanh());
        var x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][..(int)t];
        var mask = torch.ones(t, t).tril().eq(0);
        for (int i = 0; i < Config.Layers; i++)
        {
            string h = $"transformer.h.{i}.";
            var qkv = torch.matmul(Ln(x, h + "ln_1"), w[h + "attn.c_attn.weight"]) + w[h + "attn.c_attn.bias"];
            Tensor Heads(int part) => qkv[.., .., (part * c)..((part + 1) * c)].view(1, t, nh, hd).transpose(1, 2);
            var scores = torch.matmul(Heads(0), Heads(1).transpose(-2, -1)) / Math.Sqrt(hd);
            var attn = torch.matmul(scores.masked_fill(mask, double.NegativeInfinity).softmax(-1), Heads(2)).transpose(1, 2).reshape(1, t, c);
            x = x + torch.matmul(attn, w[h + "attn.c_proj.weight"]) + w[h + "attn.c_proj.bias"];
            var m = Gelu(torch.matmul(Ln(x, h + "ln_2"), w[h + "mlp.c_fc.weight"]) + w[h + "mlp.c_fc.bias"]);
            x = x + torch.matmul(m, w[h + "mlp.c_proj.weight"]) + w[h + "mlp.c_proj.bias"];
        }

        return torch.matmul(Ln(x, "transformer.ln_f"), w["transformer.wte.weight"].t());
    }

    [Fact]
    public void A_hugging_face_checkpoint_loads_and_matches_a_naive_forward()
    {
        using var scope = torch.NewDisposeScope();
        var weights = WriteHuggingFaceCheckpoint();
        using var gpt2 = Gpt2LMHeadModel.FromPretrained(_dir);
        gpt2.eval();
        var ids = torch.tensor(new long[] { 3, 14, 15, 9, 26, 5, 35, 8, 9, 7 }, 1, 10);
        using var _ = torch.no_grad();
        Tiny.AssertClose(NaiveForward(weights, ids), gpt2.Logits(ids), atol: 1e-4);
    }

    [Fact]
    public void Missing_tensors_are_named()
    {
        using var scope = torch.NewDisposeScope();
        var weights = WriteHuggingFaceCheckpoint();
        weights.Remove("transformer.h.1.mlp.c_fc.bias");
        Safetensors.Write(Path.Combine(_dir, "model.safetensors"), weights);
        var ex = Assert.Throws<InvalidDataException>(() => Gpt2LMHeadModel.FromPretrained(_dir));
        Assert.Contains("missing: h.1.mlp.c_fc.bias", ex.Message);
    }

    [Fact]
    public void An_upcycled_moe_computes_what_the_dense_gpt2_computes()
    {
        using var scope = torch.NewDisposeScope();
        WriteHuggingFaceCheckpoint();
        using var gpt2 = Gpt2LMHeadModel.FromPretrained(_dir);
        var options = new MoeModelOptions
        {
            VocabSize = 50, ContextLength = 12, HiddenSize = 32, NumHeads = 4, NumLayers = 3, NumExperts = 3, TopK = 2,
            ExpertMultiplier = 4, Activation = ExpertActivation.Gelu, Router = RouterKind.NoisyTopK,
        };
        using var moe = new MoeForCausalLM(options);
        var report = Gpt2Upcycling.Initialize(moe, gpt2);
        Assert.Contains(report.Copied, c => c.Key == "layers.0.block_sparse_moe.experts.fc1.weight" && c.Source == "h.0.mlp.c_fc.weight");
        Assert.Contains(report.Copied, c => c.Key == "embed_positions.weight");
        Assert.Contains(report.LeftAtInit, l => l.Key == "layers.0.block_sparse_moe.gate.weight");
        Assert.Contains(report.LeftAtInit, l => l.Key == "layers.2.self_attn.qkv_proj.weight"); // beyond GPT-2's depth

        // every expert is the dense MLP and the gates sum to 1, so two upcycled layers compute GPT-2's two blocks
        var twoLayerOptions = options.Clone();
        twoLayerOptions.NumLayers = 2;
        using var twoLayers = new MoeForCausalLM(twoLayerOptions);
        Assert.DoesNotContain(Gpt2Upcycling.Initialize(twoLayers, gpt2).LeftAtInit, l => !l.Key.Contains(".gate."));
        twoLayers.eval();
        gpt2.eval();
        var ids = torch.tensor(new long[] { 1, 2, 3, 4, 5, 6, 7, 8 }, 1, 8);
        using var _ = torch.no_grad();
        Tiny.AssertClose(gpt2.Logits(ids), twoLayers.Logits(ids), atol: 1e-4);
    }
}
