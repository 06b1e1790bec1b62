using TorchSharp;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Tests.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Checkpoints;

public sealed class MoeCheckpointTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-ckpt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void A_saved_model_loads_with_the_same_options_weights_and_logits()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(8);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.DeepExperts = 1; o.SharedExpert = true; o.TieWordEmbeddings = true; }));
        model.train();
        var ids = torch.randint(0, 19, [2, 6]);
        model.call(new CausalLMInput(ids)); // records a window batch: buffers are state too
        model.eval();
        var expected = model.call(new CausalLMInput(ids)).Logits;

        string dir = Path.Combine(_dir, "ckpt");
        MoeCheckpoint.Save(model, dir);
        MoeCheckpoint.Save(model, dir); // replacing an existing checkpoint
        Assert.Equal([MoeCheckpoint.ConfigFile, MoeCheckpoint.WeightsFile], Directory.GetFiles(dir).Select(Path.GetFileName).Order());
        Assert.Single(Directory.GetFileSystemEntries(_dir)); // no staging leftovers

        using var loaded = MoeCheckpoint.Load(dir);
        loaded.eval();
        Assert.Equal(System.Text.Json.JsonSerializer.Serialize(model.Options), System.Text.Json.JsonSerializer.Serialize(loaded.Options));
        Tiny.AssertClose(expected, loaded.call(new CausalLMInput(ids)).Logits, atol: 0);
        Tiny.AssertClose(Tiny.Param(model, "layers.0.block_sparse_moe.gate.weight"), Tiny.Param(loaded, "layers.0.block_sparse_moe.gate.weight"), atol: 0);
        var header = Safetensors.ReadHeader(Path.Combine(dir, MoeCheckpoint.WeightsFile));
        Assert.Contains(header.Entries, e => e.Name == "layers.1.block_sparse_moe.utilization.counts");
    }

    /// <summary>
    /// Checkpoints written before the projection weights became input-major hold them as (out, in) / (n, out, in) and
    /// lack the layout key; they load transposed, to the same logits. Deep experts and o_proj are square, where only
    /// the key can tell the layouts apart.
    /// </summary>
    [Fact]
    public void A_checkpoint_with_the_earlier_out_in_weight_layout_loads_to_the_same_logits()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(9);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.DeepExperts = 1; o.SharedExpert = true; }));
        model.eval();
        var ids = torch.randint(0, 19, [2, 6]);
        var expected = model.call(new CausalLMInput(ids)).Logits;
        string dir = Path.Combine(_dir, "old");
        MoeCheckpoint.Save(model, dir);
        string weights = Path.Combine(dir, MoeCheckpoint.WeightsFile);
        var old = Safetensors.Read(weights).ToDictionary(kv => kv.Key, kv =>
            kv.Value.dim() == 3 ? kv.Value.transpose(1, 2).contiguous() : kv.Key.EndsWith("_proj.weight") ? kv.Value.t().contiguous() : kv.Value);
        Assert.Equal(2 * 2, old.Keys.Count(k => k.EndsWith("_proj.weight"))); // qkv and o of both layers
        Assert.Contains(old, kv => kv.Value.dim() == 3 && kv.Value.shape[1] == kv.Value.shape[2]); // the square deep layer
        Safetensors.Write(weights, old, new Dictionary<string, string> { ["format"] = "pt", ["library"] = "YingHub.Moe" });

        using var loaded = MoeCheckpoint.Load(dir);
        loaded.eval();
        Tiny.AssertClose(expected, loaded.call(new CausalLMInput(ids)).Logits, atol: 0);
    }

    [Fact]
    public void Rotary_tables_stay_out_of_checkpoints()
    {
        using var model = new MoeForCausalLM(Tiny.Options(o => o.Positions = YingHub.Moe.Core.Configuration.PositionEncoding.Rope));
        Assert.DoesNotContain(model.state_dict().Keys, k => k.Contains("rotary"));
        string dir = Path.Combine(_dir, "rope");
        MoeCheckpoint.Save(model, dir);
        using var loaded = MoeCheckpoint.Load(dir);
        Assert.Equal(YingHub.Moe.Core.Configuration.PositionEncoding.Rope, loaded.Options.Positions);
    }

    [Fact]
    public void Loading_reports_missing_unexpected_and_mis_shaped_tensors_by_name()
    {
        using var scope = torch.NewDisposeScope();
        using var small = new MoeForCausalLM(Tiny.Options());
        string dir = Path.Combine(_dir, "small");
        MoeCheckpoint.Save(small, dir);
        using var other = new MoeForCausalLM(Tiny.Options(o => { o.VocabSize = 23; o.SharedExpert = true; }));
        string weights = Path.Combine(dir, MoeCheckpoint.WeightsFile);

        var ex = Assert.Throws<InvalidDataException>(() => MoeCheckpoint.LoadWeights(other, weights));
        Assert.Contains("embed_tokens.weight (model Float32 [23, 16], file Float32 [19, 16])", ex.Message);
        Assert.Contains("missing: layers.0.block_sparse_moe.shared_expert.ffn.fc1.weight", ex.Message);

        var report = MoeCheckpoint.LoadWeights(other, weights, strict: false);
        Assert.False(report.IsExact);
        Assert.Contains(report.Mismatched, m => m.Name == "lm_head.weight");
        Assert.Contains("layers.1.block_sparse_moe.shared_expert.ffn.fc2.bias", report.Missing);
        Assert.Empty(report.Unexpected);
        Assert.Contains("layers.0.self_attn.qkv_proj.weight", report.Loaded);
        Tiny.AssertClose(Tiny.Param(small, "layers.0.self_attn.qkv_proj.weight"), Tiny.Param(other, "layers.0.self_attn.qkv_proj.weight"), atol: 0);

        var back = MoeCheckpoint.LoadWeights(small, Path.Combine(dir, MoeCheckpoint.WeightsFile));
        Assert.True(back.IsExact);
        Assert.Throws<FileNotFoundException>(() => MoeCheckpoint.Load(Path.Combine(_dir, "nowhere")));
    }
}
