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
        Assert.Equal([MoeCheckpoint.ChecksumFile, MoeCheckpoint.ConfigFile, MoeCheckpoint.WeightsFile], Directory.GetFiles(dir).Select(Path.GetFileName).Order());
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
    public void Loading_skips_drawing_weights_only_while_it_builds_the_model()
    {
        using var scope = torch.NewDisposeScope();
        var options = Tiny.Options(o => { o.Init = YingHub.Moe.Core.Configuration.InitScheme.Normal; o.InitStd = 0.02; o.VocabSize = 512; });
        using (var model = new MoeForCausalLM(options)) MoeCheckpoint.Save(model, Path.Combine(_dir, "m"));
        using var loaded = MoeCheckpoint.Load(Path.Combine(_dir, "m"));
        // a model built afterwards on this thread draws its weights again: embeddings normal(0, 0.02)
        using var fresh = new MoeForCausalLM(options);
        double std = Tiny.Param(fresh, "embed_tokens.weight").std().item<float>();
        Assert.InRange(std, 0.018, 0.022);
    }

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
        File.Delete(Path.Combine(dir, MoeCheckpoint.ChecksumFile)); // that version wrote no checksums

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

    [Fact]
    public void Every_file_of_a_checkpoint_is_checksummed_and_a_flipped_byte_is_refused_naming_the_file()
    {
        torch.manual_seed(8);
        using var model = new MoeForCausalLM(Tiny.Options());
        string dir = Path.Combine(_dir, "ckpt");
        MoeCheckpoint.Save(model, dir, staging => File.WriteAllText(Path.Combine(staging, "tokenizer.json"), "{}"));

        // sha256sum's format, every file but the checksum file itself, computed here independently
        var lines = File.ReadAllLines(Path.Combine(dir, MoeCheckpoint.ChecksumFile));
        Assert.Equal(3, lines.Length);
        foreach (string file in new[] { MoeCheckpoint.ConfigFile, MoeCheckpoint.WeightsFile, "tokenizer.json" })
        {
            string hex = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(dir, file))));
            Assert.Contains($"{hex}  {file}", lines);
        }

        // 64 bytes flipped in the middle of the weights: the header still parses, the values are garbage
        string weights = Path.Combine(dir, MoeCheckpoint.WeightsFile);
        byte[] bytes = File.ReadAllBytes(weights);
        for (int i = 0; i < 64; i++) bytes[bytes.Length / 2 + i] ^= 0x5a;
        File.WriteAllBytes(weights, bytes);
        var ex = Assert.Throws<InvalidDataException>(() => MoeCheckpoint.Load(dir));
        Assert.Contains("'model.safetensors' does not match its recorded SHA-256", ex.Message);
        ex = Assert.Throws<InvalidDataException>(() => MoeCheckpoint.LoadWeights(model, weights));
        Assert.Contains("does not match its recorded SHA-256", ex.Message);
        using (var unchecked_ = MoeCheckpoint.Load(dir, verifyChecksums: false)) { } // the caller may skip the check (huge files)

        // a checkpoint without sums (written before them) still loads
        MoeCheckpoint.Save(model, dir);
        File.Delete(Path.Combine(dir, MoeCheckpoint.ChecksumFile));
        using var old = MoeCheckpoint.Load(dir);
    }

    [Fact]
    public void A_nan_weight_is_refused_naming_the_tensor()
    {
        torch.manual_seed(8);
        using var model = new MoeForCausalLM(Tiny.Options());
        using (torch.no_grad()) Tiny.Param(model, "layers.1.self_attn.o_proj.weight")[0, 1] = float.NaN;
        string dir = Path.Combine(_dir, "nan");
        MoeCheckpoint.Save(model, dir); // the sums match: the file holds exactly what was saved
        var ex = Assert.Throws<InvalidDataException>(() => MoeCheckpoint.Load(dir));
        Assert.Contains("'layers.1.self_attn.o_proj.weight' hold NaN or infinite values", ex.Message);
        Assert.DoesNotContain("layers.0", ex.Message);
    }
}
