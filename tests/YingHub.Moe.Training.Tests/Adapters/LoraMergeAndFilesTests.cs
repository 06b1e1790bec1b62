using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Checkpoints;
using YingHub.Moe.Training.Adapters;
using static TorchSharp.torch;
using static YingHub.Moe.Training.Tests.Adapters.LoraTestModels;

namespace YingHub.Moe.Training.Tests.Adapters;

public sealed class LoraMergeAndFilesTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("yinghub-lora-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("moe")]
    [InlineData("gpt2")]
    public void Merged_logits_equal_active_logits_and_unmerge_restores_the_weights(string kind)
    {
        using nn.Module model = kind == "moe" ? MoeModel() : Gpt2Model();
        var lm = (YingHub.Moe.Core.Modules.ICausalLanguageModel)model;
        using var ids = Ids(lm.VocabSize);
        string[] targets = kind == "moe" ? ["qkv_proj", "o_proj"] : ["c_attn", "c_fc"];
        var original = Snapshot(model);
        using var adapter = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 6, TargetModules = targets });
        Randomize(adapter, 3);
        adapter.Activate();
        using var active = Logits(lm, ids);
        adapter.Merge();
        Assert.True(adapter.IsMerged && adapter.IsActive);
        using var merged = Logits(lm, ids);
        Assert.True(torch.allclose(merged, active, rtol: 1e-4, atol: 1e-5)); // the hooks are off: added once, not twice
        string target = adapter.TargetNames[0];
        using var delta = adapter.Delta(target);
        using var changed = Parameter(model, target + ".weight").detach() - original[target + ".weight"];
        Assert.True(torch.allclose(changed, delta.t(), atol: 1e-6));          // input-major layout: W += (scale B A)ᵀ

        adapter.Unmerge();
        foreach (var (name, p) in model.named_parameters()) Assert.True(torch.allclose(p.detach(), original[name], rtol: 0, atol: 1e-6), name);
        using var unmerged = Logits(lm, ids);
        Assert.True(torch.allclose(unmerged, active, rtol: 1e-4, atol: 1e-5));
        adapter.Merge();
        adapter.Deactivate(); // unmerges
        using var off = Logits(lm, ids);
        foreach (var (name, p) in model.named_parameters()) Assert.True(torch.allclose(p.detach(), original[name], rtol: 0, atol: 1e-6), name);
    }

    [Fact]
    public void Merging_an_nn_Linear_target_adds_scale_B_A_in_the_out_in_layout()
    {
        using var model = MoeModel();
        const string target = "layers.0.block_sparse_moe.gate.noise";
        var before = Parameter(model, target + ".weight").detach().clone();
        using var adapter = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 1, TargetModules = [target] });
        Randomize(adapter, 4);
        var a = Parameter(adapter, $"base_model.model.{target}.lora_A.weight").detach(); // (r, in)
        var b = Parameter(adapter, $"base_model.model.{target}.lora_B.weight").detach(); // (out, r)
        var module = (nn.Module<Tensor, Tensor>)Module(model, target);
        torch.manual_seed(1);
        using var x = torch.randn(4, 16);
        adapter.Activate();
        using var noGrad = torch.no_grad();
        using var active = module.call(x);
        adapter.Merge();
        using var merged = module.call(x);
        Assert.True(torch.allclose(merged, active, rtol: 1e-5, atol: 1e-6));
        Assert.True(torch.allclose(Parameter(model, target + ".weight").detach(), before + torch.matmul(b, a) * 0.5, atol: 1e-6)); // alpha / r = 1 / 2
        adapter.Unmerge();
        Assert.True(torch.allclose(Parameter(model, target + ".weight").detach(), before, rtol: 0, atol: 1e-6));
    }

    [Fact]
    public void Save_and_load_round_trip_is_bit_exact_with_peft_names_and_config_keys()
    {
        string dir = Path.Combine(_dir, "adapter");
        using (var gpt2 = Gpt2Model())
        using (var adapter = new LoraAdapter(gpt2, new LoraOptions { Rank = 2, Alpha = 5, Dropout = 0.05, TargetModules = ["c_attn", "c_proj"], BaseModelNameOrPath = "gpt2-tiny" }))
        {
            Randomize(adapter, 8);
            adapter.Save(dir);
        }

        Assert.Equal(["adapter_config.json", "adapter_model.safetensors"], Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        // PEFT's saved names: base_model.model.<module>.lora_A.weight / lora_B.weight (the adapter name is not in them)
        var header = Safetensors.ReadHeader(Path.Combine(dir, "adapter_model.safetensors"));
        Assert.Equal(
            ["base_model.model.h.0.attn.c_attn.lora_A.weight", "base_model.model.h.0.attn.c_attn.lora_B.weight",
             "base_model.model.h.0.attn.c_proj.lora_A.weight", "base_model.model.h.0.attn.c_proj.lora_B.weight",
             "base_model.model.h.0.mlp.c_proj.lora_A.weight", "base_model.model.h.0.mlp.c_proj.lora_B.weight"],
            header.Entries.Select(e => e.Name).Order(StringComparer.Ordinal));
        Assert.Equal([2L, 8L], header.Entries.Single(e => e.Name == "base_model.model.h.0.attn.c_attn.lora_A.weight").Shape);
        Assert.Equal([24L, 2L], header.Entries.Single(e => e.Name == "base_model.model.h.0.attn.c_attn.lora_B.weight").Shape);
        Assert.Equal("pt", header.Metadata["format"]);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!.AsObject();
        Assert.Equal(
            ["base_model_name_or_path", "bias", "fan_in_fan_out", "inference_mode", "init_lora_weights", "lora_alpha", "lora_dropout",
             "modules_to_save", "peft_type", "r", "target_modules", "task_type", "use_rslora"],
            config.Select(kv => kv.Key).Order(StringComparer.Ordinal));
        Assert.Equal("LORA", config["peft_type"]!.GetValue<string>());
        Assert.Equal(2, config["r"]!.GetValue<int>());
        Assert.Equal(5, config["lora_alpha"]!.GetValue<double>());
        Assert.Equal(0.05, config["lora_dropout"]!.GetValue<double>());
        Assert.Equal(["c_attn", "c_proj"], config["target_modules"]!.AsArray().Select(n => n!.GetValue<string>()));
        Assert.True(config["fan_in_fan_out"]!.GetValue<bool>());
        Assert.Equal("gpt2-tiny", config["base_model_name_or_path"]!.GetValue<string>());

        // a fresh base with the same weights: same adapter tensors, bit for bit, and the same logits
        using var original = Gpt2Model();
        using var ids = Ids(13);
        using var saved = new LoraAdapter(original, new LoraOptions { Rank = 2, Alpha = 5, TargetModules = ["c_attn", "c_proj"] }, "saved");
        Randomize(saved, 8);
        saved.Activate();
        using var expected = Logits(original, ids);
        using var fresh = Gpt2Model();
        using var loaded = LoraAdapter.Load(fresh, dir, "loaded");
        Assert.False(loaded.IsActive);
        Assert.Equal(5.0 / 2, loaded.Scale);
        foreach (var (name, p) in saved.named_parameters()) Assert.True(BitEqual(p.detach(), Parameter(loaded, name).detach()), name);
        loaded.Activate();
        using var actual = Logits(fresh, ids);
        Assert.True(BitEqual(expected, actual));
    }

    [Fact]
    public void Loading_onto_a_model_whose_target_shapes_differ_names_the_tensor()
    {
        string dir = Path.Combine(_dir, "moe16");
        using (var model = MoeModel(hidden: 16))
        using (var adapter = new LoraAdapter(model, new LoraOptions { Rank = 2, TargetModules = ["o_proj"] }))
            adapter.Save(dir);

        using var wider = MoeModel(hidden: 24);
        var ex = Assert.Throws<InvalidDataException>(() => { using var _ = LoraAdapter.Load(wider, dir); });
        Assert.Contains("tensor 'base_model.model.layers.0.self_attn.o_proj.lora_A.weight' has shape [2, 16]", ex.Message);
        Assert.Contains("needs [2, 24]", ex.Message);
        Assert.All(wider.parameters(), p => Assert.True(p.requires_grad)); // the failed load left the model as it was

        File.WriteAllText(Path.Combine(dir, "adapter_config.json"), """{"peft_type": "LORA", "r": 2, "lora_alpha": 8, "target_modules": ".*o_proj"}""");
        Assert.Contains("target_modules is a string", Assert.Throws<InvalidDataException>(() => { using var _ = LoraAdapter.Load(wider, dir); }).Message);
    }

    // hand-made 2×3 updates for the merge tests (rows: out, columns: in)
    private static readonly float[][] Deltas =
    [
        [4f, -1f, 0.5f, -3f, 2f, -5f],
        [-2f, 6f, 1f, 1f, -0.5f, 3f],
        [1f, -2f, 0.1f, -4f, 0.2f, 7f],
    ];

    /// <summary>Three adapters on one nn.Linear(3 → 2) whose scale · B A equal <see cref="Deltas"/> (r = 2, alpha = 2: B = I, A = Δ).</summary>
    private static (nn.Module Model, LoraAdapter[] Adapters) ThreeAdapters()
    {
        torch.manual_seed(1);
        var model = nn.Sequential(("fc", nn.Linear(3, 2)));
        var adapters = Deltas.Select((d, i) =>
        {
            var adapter = new LoraAdapter(model, new LoraOptions { Rank = 2, Alpha = 2, TargetModules = ["fc"] }, $"a{i}");
            using var noGrad = torch.no_grad();
            Parameter(adapter, "base_model.model.fc.lora_A.weight").copy_(torch.tensor(d).view(2, 3));
            Parameter(adapter, "base_model.model.fc.lora_B.weight").copy_(torch.eye(2));
            return adapter;
        }).ToArray();
        return (model, adapters);
    }

    private static void AssertMatrix(float[] expected, Tensor actual) =>
        Assert.Equal(expected, actual.contiguous().data<float>().ToArray().Select(v => MathF.Round(v, 5)));

    [Fact]
    public void Weighted_sum_and_TIES_give_the_hand_computed_updates()
    {
        var (model, adapters) = ThreeAdapters();
        using var _ = model;
        var weighted = adapters.Zip(new[] { 1.0, 0.5, 2.0 }).Select(p => (p.First, p.Second)).ToArray();
        var ones = adapters.Select(a => (a, 1.0)).ToArray();

        // Δ1 + 0.5 Δ2 + 2 Δ3
        using (var sum = LoraMerging.WeightedSum(weighted)) AssertMatrix([5f, -2f, 1.2f, -10.5f, 2.15f, 10.5f], sum["fc"]);

        // density 0.5 keeps 3 of 6 per update: Δ1 → [4 0 0; -3 0 -5], Δ2 → [-2 6 0; 0 0 3], Δ3 → [0 -2 0; -4 0 7];
        // elected signs (sign of the sum): [+ + +; - + +]; means of the agreeing entries: [4 6 0; -3.5 0 5]
        using (var ties = LoraMerging.Ties(ones, density: 0.5)) AssertMatrix([4f, 6f, 0f, -3.5f, 0f, 5f], ties["fc"]);
        // weighted: the same signs; (0,1) 0.5·6 = 3, (1,0) (−3 − 2·4) / 2 = −5.5, (1,2) (0.5·3 + 2·7) / 2 = 7.75
        using (var ties = LoraMerging.Ties(weighted, density: 0.5)) AssertMatrix([4f, 3f, 0f, -5.5f, 0f, 7.75f], ties["fc"]);
        // density 1 trims nothing: (0,0) signs + − + sum 3 → mean(4, 1) = 2.5; (0,2) all + → mean(0.5, 1, 0.1) = 0.533..
        using (var ties = LoraMerging.Ties(ones, density: 1)) AssertMatrix([2.5f, 6f, 0.53333f, -3.5f, 1.1f, 5f], ties["fc"]);
        Assert.Throws<ArgumentOutOfRangeException>(() => LoraMerging.Ties(ones, density: 0));
        foreach (var a in adapters) a.Dispose();
    }

    [Fact]
    public void TIES_keeps_ceil_density_times_n_entries_without_binary_rounding_surprises()
    {
        torch.manual_seed(1);
        using var model = nn.Sequential(("fc", nn.Linear(5, 5)));
        using var adapter = new LoraAdapter(model, new LoraOptions { Rank = 5, Alpha = 5, TargetModules = ["fc"] });
        float[] values = Enumerable.Range(1, 25).Select(v => v % 2 == 0 ? -v : (float)v).ToArray(); // 1, -2, 3, ..., 25
        using (torch.no_grad())
        {
            Parameter(adapter, "base_model.model.fc.lora_A.weight").copy_(torch.tensor(values).view(5, 5));
            Parameter(adapter, "base_model.model.fc.lora_B.weight").copy_(torch.eye(5));
        }

        float[] Top(int k) => values.Select(v => Math.Abs(v) > 25 - k ? v : 0f).ToArray();
        // n = 25: density 0.28 keeps 7 (0.28 · 25 is 7.000000000000001 in binary), 0.27 keeps ⌈6.75⌉ = 7, 0.29 keeps ⌈7.25⌉ = 8
        using (var ties = LoraMerging.Ties([(adapter, 1.0)], density: 0.28)) AssertMatrix(Top(7), ties["fc"]);
        using (var ties = LoraMerging.Ties([(adapter, 1.0)], density: 0.27)) AssertMatrix(Top(7), ties["fc"]);
        using (var ties = LoraMerging.Ties([(adapter, 1.0)], density: 0.29)) AssertMatrix(Top(8), ties["fc"]);
    }

    [Fact]
    public void A_combined_update_merges_unmerges_and_truncates_to_a_low_rank_adapter()
    {
        var (model, adapters) = ThreeAdapters();
        using var _ = model;
        var before = Parameter(model, "fc.weight").detach().clone();
        using var ties = LoraMerging.Ties(adapters.Select(a => (a, 1.0)).ToArray(), density: 0.5);
        ties.Merge();
        AssertMatrix([4f, 6f, 0f, -3.5f, 0f, 5f], Parameter(model, "fc.weight").detach() - before);
        ties.Unmerge();
        Assert.True(torch.allclose(Parameter(model, "fc.weight").detach(), before, rtol: 0, atol: 1e-6));

        using var full = ties.ToAdapter(rank: 2, name: "ties");   // rank 2 of a 2×3 matrix: exact
        Assert.Equal(1.0, full.Scale);
        using (var delta = full.Delta("fc")) AssertMatrix([4f, 6f, 0f, -3.5f, 0f, 5f], delta);
        using var one = ties.ToAdapter(rank: 1, name: "ties1");   // the best rank-1 approximation: error = the second singular value
        using var d1 = one.Delta("fc");
        var (_, s, _) = torch.linalg.svd(ties["fc"], fullMatrices: false);
        Assert.Equal(s[1].item<float>(), (ties["fc"] - d1).norm().item<float>(), 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => ties.ToAdapter(rank: 3, name: "too-big"));
        foreach (var a in adapters) a.Dispose();
    }
}
