using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Interop;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Adapters;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Tests.Adapters;

/// <summary>Small real models for the adapter tests, and helpers that read them from outside.</summary>
internal static class LoraTestModels
{
    public static MoeForCausalLM MoeModel(int seed = 2, int hidden = 16)
    {
        torch.manual_seed(seed);
        var model = new MoeForCausalLM(new MoeModelOptions
        {
            VocabSize = 11, ContextLength = 16, HiddenSize = hidden, NumHeads = 2, NumLayers = 2, NumExperts = 4, TopK = 2, ExpertMultiplier = 2,
            Router = RouterKind.NoisyTopK, Positions = PositionEncoding.Learned,
        });
        model.eval();
        return model;
    }

    public static Gpt2LMHeadModel Gpt2Model(int seed = 3)
    {
        torch.manual_seed(seed);
        var model = new Gpt2LMHeadModel(new Gpt2Config { VocabSize = 13, Positions = 8, Embedding = 8, Layers = 1, Heads = 2 });
        model.eval();
        return model;
    }

    public static Tensor Ids(long vocab, int seed = 5)
    {
        torch.manual_seed(seed);
        return torch.randint(0, vocab, [2, 6]);
    }

    /// <summary>Logits (B, T, V) without autograd; the caller owns them.</summary>
    public static Tensor Logits(ICausalLanguageModel model, Tensor ids)
    {
        using var noGrad = torch.no_grad();
        return model.Logits(ids);
    }

    /// <summary>Sets every A and B of <paramref name="adapter"/> to seeded normal values (B ≠ 0, so the update shows).</summary>
    public static void Randomize(LoraAdapter adapter, int seed, double std = 0.3)
    {
        using var generator = new Generator((ulong)seed);
        using var noGrad = torch.no_grad();
        foreach (var (_, p) in adapter.named_parameters()) p.copy_(torch.randn(p.shape, generator: generator) * std);
    }

    public static nn.Module Module(nn.Module model, string name) => model.named_modules().Single(m => m.name == name).module;

    public static Tensor Parameter(nn.Module model, string name) => model.named_parameters().Single(p => p.name == name).parameter;

    /// <summary>A copy of every parameter, by name.</summary>
    public static Dictionary<string, Tensor> Snapshot(nn.Module model) =>
        model.named_parameters().ToDictionary(p => p.name, p => p.parameter.detach().clone());

    public static bool BitEqual(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.bytes.SequenceEqual(b.bytes);
}
