using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Interop;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>The public views adapters use: <see cref="ILinearLayer"/>, <see cref="IUnhookedSubmodules"/>, <see cref="AtomicFile"/>.</summary>
public sealed class LinearLayerTests
{
    private static MoeModelOptions Options(bool tied) => new()
    {
        VocabSize = 11, ContextLength = 8, HiddenSize = 16, NumHeads = 2, NumKeyValueHeads = 1, NumLayers = 1, NumExperts = 2, TopK = 1,
        TieWordEmbeddings = tied,
    };

    [Fact]
    public void Attention_projections_and_Conv1D_report_their_weight_features_and_layout()
    {
        using var model = new MoeForCausalLM(Options(tied: false));
        var layers = model.named_modules().Where(m => m.module is ILinearLayer).ToDictionary(m => m.name, m => (ILinearLayer)m.module);
        Assert.Equal(["layers.0.self_attn.qkv_proj", "layers.0.self_attn.o_proj"], layers.Keys);
        var qkv = layers["layers.0.self_attn.qkv_proj"];
        Assert.Equal((16, 32, true), (qkv.InFeatures, qkv.OutFeatures, qkv.InputMajor)); // GQA: (2 + 2·1) heads of 8
        Assert.Same(model.named_parameters().Single(p => p.name == "layers.0.self_attn.qkv_proj.weight").parameter, qkv.Weight);
        Assert.Equal([16L, 32L], qkv.Weight.shape);

        using var gpt2 = new Gpt2LMHeadModel(new Gpt2Config { VocabSize = 13, Positions = 8, Embedding = 8, Layers = 1, Heads = 2 });
        var conv = gpt2.named_modules().Where(m => m.module is ILinearLayer).ToDictionary(m => m.name, m => (ILinearLayer)m.module);
        Assert.Equal(["h.0.attn.c_attn", "h.0.attn.c_proj", "h.0.mlp.c_fc", "h.0.mlp.c_proj"], conv.Keys);
        Assert.Equal((8, 32, true), (conv["h.0.mlp.c_fc"].InFeatures, conv["h.0.mlp.c_fc"].OutFeatures, conv["h.0.mlp.c_fc"].InputMajor));
        Assert.Same(gpt2.named_parameters().Single(p => p.name == "h.0.mlp.c_fc.weight").parameter, conv["h.0.mlp.c_fc"].Weight);
    }

    [Fact]
    public void The_untied_lm_head_is_the_only_unhooked_submodule()
    {
        using var untied = new MoeForCausalLM(Options(tied: false));
        Assert.Equal(["lm_head"], ((IUnhookedSubmodules)untied).UnhookedSubmodules);
        using var tied = new MoeForCausalLM(Options(tied: true));
        Assert.Empty(((IUnhookedSubmodules)tied).UnhookedSubmodules);
    }

    [Fact]
    public void AtomicFile_replaces_the_file_and_leaves_no_temporary_file()
    {
        string dir = Directory.CreateTempSubdirectory("yinghub-atomic-").FullName;
        try
        {
            string path = Path.Combine(dir, "sub", "a.json");
            AtomicFile.WriteAllText(path, "first");
            AtomicFile.WriteAllText(path, "second é");
            Assert.Equal("second é", File.ReadAllText(path));
            Assert.Equal([(byte)'s', (byte)'e'], File.ReadAllBytes(path)[..2]); // no byte-order mark
            Assert.Equal(["a.json"], Directory.GetFiles(Path.GetDirectoryName(path)!).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
