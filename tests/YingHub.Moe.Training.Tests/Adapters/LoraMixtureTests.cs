using System.Text.Json.Nodes;
using TorchSharp;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Adapters;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Schedules;
using static TorchSharp.torch;
using static YingHub.Moe.Training.Tests.Adapters.LoraMixTests;
using static YingHub.Moe.Training.Tests.Adapters.LoraTestModels;

namespace YingHub.Moe.Training.Tests.Adapters;

public sealed class LoraMixtureTests
{
    private const string Target = "layers.1.self_attn.o_proj";

    private static LoraMixtureOptions Options(int experts = 3, int topK = 2, bool noisy = false) => new()
    {
        Lora = new LoraOptions { Rank = 2, Alpha = 3, TargetModules = ["qkv_proj", "o_proj"] }, NumExperts = experts, TopK = topK, NoisyGate = noisy,
    };

    private static void Randomize(nn.Module module, int seed, double std = 0.3)
    {
        using var generator = new Generator((ulong)seed);
        using var noGrad = torch.no_grad();
        foreach (var (_, p) in module.named_parameters()) p.copy_(torch.randn(p.shape, generator: generator) * std);
    }

    private static OptimizerStep Optimizer(LoraMixture mixture) => new(mixture.TrainableParameters(), new OptimizerStepOptions
    {
        AdamW = new AdamWGroupOptions { LearningRate = 1e-2, WeightDecay = 0 }, Schedule = new ConstantSchedule(1e-2),
    });

    private static void Train(MoeForCausalLM model, LoraMixture mixture, OptimizerStep optimizer, int steps, int seed)
    {
        model.train();
        torch.manual_seed(seed);
        using var x = torch.randint(0, 11, [2, 8]);
        for (int step = 0; step < steps; step++)
        {
            using var scope = torch.NewDisposeScope();
            optimizer.Step(step, _ => model.call(new CausalLMInput(x, x)).Loss! + mixture.BalanceLoss() * 0.01);
        }
    }

    [Fact]
    public void The_gate_picks_the_top_k_logits_and_renormalises_their_softmax_as_a_naive_loop_does()
    {
        using var model = MoeModel();
        using var mixture = new LoraMixture(model, Options(experts: 4, topK: 2));
        Randomize(mixture, 3);
        var layer = mixture.Layers.Single(l => l.Target.Name == Target);
        torch.manual_seed(5);
        using var x = torch.randn(6, 16);                                              // (N, C)
        using var noGrad = torch.no_grad();
        var (indices, weights, probs) = layer.Route(x, 2, training: false);
        using var _i = indices;
        using var _w = weights;
        using var _p = probs;
        var xs = x.to(ScalarType.Float64).data<double>().ToArray();
        var rows = Enumerable.Range(0, 4).Select(i => Parameter(mixture, $"base_model.model.{Target}.gate.{i}.weight").to(ScalarType.Float64).data<double>().ToArray()).ToArray();
        for (int n = 0; n < 6; n++)
        {
            var logits = new double[4];
            for (int i = 0; i < 4; i++)
            for (int c = 0; c < 16; c++) logits[i] += xs[n * 16 + c] * rows[i][c];
            var order = Enumerable.Range(0, 4).OrderByDescending(i => logits[i]).ToArray();
            double max = logits.Max(), all = logits.Sum(l => Math.Exp(l - max));
            double picked = Math.Exp(logits[order[0]] - max) + Math.Exp(logits[order[1]] - max);
            for (int j = 0; j < 2; j++)
            {
                Assert.Equal(order[j], indices[n, j].item<long>());
                Assert.Equal(Math.Exp(logits[order[j]] - max) / picked, weights[n, j].item<float>(), 5);
            }

            for (int i = 0; i < 4; i++) Assert.Equal(Math.Exp(logits[i] - max) / all, probs[n, i].item<float>(), 5);
        }
    }

    [Fact]
    public void An_active_mixture_adds_the_gated_experts_updates_by_hand()
    {
        using var model = MoeModel();
        using var mixture = new LoraMixture(model, Options(experts: 3, topK: 2));
        Randomize(mixture, 4);
        mixture.Activate();
        torch.manual_seed(6);
        using var x = torch.randn(2, 3, 16);                                           // (B, T, C)
        var module = (nn.Module<Tensor, Tensor>)Module(model, Target);
        using var noGrad = torch.no_grad();
        using var y = module.call(x);
        // by hand: per token, the gate logits, the two largest, their softmax, then Σ g_i · (3 / 2) · B_i A_i x
        var x64 = x.reshape(6, 16).to(ScalarType.Float64);
        var gate = torch.cat(Enumerable.Range(0, 3).Select(i => Parameter(mixture, $"base_model.model.{Target}.gate.{i}.weight")).ToArray(), 0).to(ScalarType.Float64); // (3, C)
        var logits = torch.matmul(x64, gate.t()).data<double>().ToArray();              // (6, 3)
        var expected = BaseOutput(model, Target, x64);                                   // (6, C)
        var updates = Enumerable.Range(0, 3).Select(i => LowRank(mixture, $"base_model.model.{Target}.experts.{i}.", x64)).ToArray();
        for (int n = 0; n < 6; n++)
        {
            var l = logits.Skip(n * 3).Take(3).ToArray();
            var top = Enumerable.Range(0, 3).OrderByDescending(i => l[i]).Take(2).ToArray();
            double z = top.Sum(i => Math.Exp(l[i]));
            foreach (int i in top) expected[n] += updates[i][n] * (Math.Exp(l[i]) / z * 1.5);
        }

        Assert.True(torch.allclose(y.reshape(6, 16).to(ScalarType.Float64), expected, rtol: 0, atol: 1e-5));
    }

    [Fact]
    public void With_every_B_zero_the_mixture_leaves_the_logits_bit_identical()
    {
        using var model = MoeModel();
        using var ids = Ids(11);
        using var before = Logits(model, ids);
        using var mixture = new LoraMixture(model, Options(noisy: true));
        mixture.Activate();
        using var after = Logits(model, ids);
        Assert.True(BitEqual(before, after));
    }

    [Fact]
    public void The_balance_loss_is_n_times_the_sum_of_pick_shares_times_mean_probabilities()
    {
        // one target, in = 2, three experts, top-1; gate rows (1, 0), (0, 1), (0, 0)
        using var model = nn.Sequential(("fc", nn.Linear(2, 2)));
        using var mixture = new LoraMixture(model, new LoraMixtureOptions
        {
            Lora = new LoraOptions { Rank = 1, TargetModules = ["fc"] }, NumExperts = 3, TopK = 1,
        });
        using (torch.no_grad())
        {
            Parameter(mixture, "base_model.model.fc.gate.0.weight").copy_(torch.tensor(new float[] { 1, 0 }).view(1, 2));
            Parameter(mixture, "base_model.model.fc.gate.1.weight").copy_(torch.tensor(new float[] { 0, 1 }).view(1, 2));
            Parameter(mixture, "base_model.model.fc.gate.2.weight").zero_();
        }

        mixture.Activate();
        model.train();
        // token 1: logits (ln 2, 0, 0) -> probs (1/2, 1/4, 1/4), picks 0; token 2: logits (0, ln 3, 0) -> (1/5, 3/5, 1/5), picks 1
        using var x = torch.tensor(new[] { (float)Math.Log(2), 0, 0, (float)Math.Log(3) }).view(2, 2);
        using var _ = ((nn.Module<Tensor, Tensor>)Module(model, "fc")).call(x);
        using var loss = mixture.BalanceLoss();
        // f = (1/2, 1/2, 0), P = (0.35, 0.425, 0.225): 3 · (0.5 · 0.35 + 0.5 · 0.425) = 1.1625
        Assert.Equal(1.1625, loss.item<float>(), 5);
        Assert.Contains("no gate decision", Assert.Throws<InvalidOperationException>(() => mixture.BalanceLoss()).Message); // taken
    }

    [Fact]
    public void Training_reaches_only_experts_and_gates_and_leaves_the_base_bit_identical()
    {
        using var model = MoeModel();
        using var mixture = new LoraMixture(model, Options(noisy: true));
        mixture.Activate();
        Assert.All(model.parameters(), p => Assert.False(p.requires_grad));
        var baseBefore = Snapshot(model);
        var mixtureBefore = Snapshot(mixture);
        model.train();
        torch.manual_seed(4);
        using var x = torch.randint(0, 11, [2, 8]);
        DisposeScopeManager.Statistics.Reset();
        using (var scope = torch.NewDisposeScope())
        {
            var loss = model.call(new CausalLMInput(x, x)).Loss! + mixture.BalanceLoss() * 0.01;
            loss.backward();
            Assert.All(model.parameters(), p => Assert.Null(p.grad));
            Assert.All(mixture.named_parameters().Where(p => p.name.Contains("lora_B", StringComparison.Ordinal) || p.name.Contains("gate", StringComparison.Ordinal)),
                p => Assert.True(p.parameter.grad is { } g && g.abs().sum().item<float>() > 0, p.name)); // the balance loss reaches the gates while B = 0
        }

        mixture.zero_grad();
        Assert.Equal(0, DisposeScopeManager.Statistics.ThreadTotalLiveCount);         // the gate records were taken and freed

        using var optimizer = Optimizer(mixture);
        Train(model, mixture, optimizer, steps: 3, seed: 4);
        foreach (var (name, p) in model.named_parameters()) Assert.True(BitEqual(baseBefore[name], p.detach()), name);
        foreach (var (name, p) in mixture.named_parameters()) Assert.False(BitEqual(mixtureBefore[name], p.detach()), name);
    }

    [Fact]
    public void Save_and_load_give_the_same_logits_and_refuse_the_other_kind()
    {
        string dir = Path.Combine(Path.GetTempPath(), "yinghub-mixture-" + Guid.NewGuid().ToString("N"));
        try
        {
            using var model = MoeModel();
            using var mixture = new LoraMixture(model, Options(noisy: true));
            Randomize(mixture, 8);
            mixture.Activate();
            using var ids = Ids(11);
            using var expected = Logits(model, ids);
            mixture.Save(dir);
            var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!;
            Assert.Equal("LORA_MIXTURE", config["peft_type"]!.GetValue<string>());
            Assert.Equal(3, config["num_experts"]!.GetValue<int>());
            Assert.Equal(2, config["num_experts_per_tok"]!.GetValue<int>());
            Assert.Contains("load it with LoraMixture.Load", Assert.Throws<InvalidDataException>(() => LoraAdapter.Load(model, dir, "x")).Message);

            using var copy = MoeModel();                                               // the same seed: the same base
            using var loaded = LoraMixture.Load(copy, dir);
            foreach (var (name, p) in mixture.named_parameters()) Assert.True(BitEqual(p.detach(), Parameter(loaded, name).detach()), name);
            Assert.Contains("base_model.model.layers.0.self_attn.qkv_proj.experts.2.lora_A.weight", loaded.named_parameters().Select(p => p.name));
            Assert.Contains("base_model.model.layers.0.self_attn.qkv_proj.gate_noise.1.weight", loaded.named_parameters().Select(p => p.name));
            loaded.Activate();
            using var actual = Logits(copy, ids);
            Assert.True(BitEqual(expected, actual));

            using var other = MoeModel(hidden: 24);
            var ex = Assert.Throws<InvalidDataException>(() => LoraMixture.Load(other, dir, "wide"));
            Assert.Contains("has shape", ex.Message);
            using var adapter = new LoraAdapter(other, new LoraOptions(), "plain");
            string plain = Path.Combine(dir, "plain");
            adapter.Save(plain);
            Assert.Contains("a mixture needs LORA_MIXTURE", Assert.Throws<InvalidDataException>(() => LoraMixture.Load(other, plain)).Message);
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Adding_an_expert_trains_only_it_and_its_gate_rows()
    {
        using var model = MoeModel();
        using var mixture = new LoraMixture(model, Options(experts: 2, topK: 2));
        mixture.Activate();
        using (var first = Optimizer(mixture)) Train(model, mixture, first, steps: 3, seed: 5);
        var trained = Snapshot(mixture);

        Assert.Equal(2, mixture.AddExpert());
        Assert.Equal(3, mixture.NumExperts);
        var trainable = mixture.TrainableParameters().Select(p => p.name).ToArray();
        Assert.NotEmpty(trainable);
        Assert.All(trainable, name => Assert.True(name.Contains(".experts.2.", StringComparison.Ordinal) || name.Contains(".gate.2.", StringComparison.Ordinal), name));
        Assert.Equal(4 * 3, trainable.Length);                                        // 4 targets × (A, B, gate row)
        var added = Snapshot(mixture);
        using (var second = Optimizer(mixture)) Train(model, mixture, second, steps: 3, seed: 6);

        foreach (var (name, p) in mixture.named_parameters())
        {
            if (trained.TryGetValue(name, out var old)) Assert.True(BitEqual(old, p.detach()), name);   // the old experts and rows: untouched
            else Assert.False(BitEqual(added[name], p.detach()), name);                                // the new expert and row: trained
        }
    }

    [Fact]
    public void Mixtures_share_the_models_names_and_one_active_rule_with_adapters()
    {
        using var model = MoeModel();
        using var adapter = new LoraAdapter(model, new LoraOptions { TargetModules = ["o_proj"] }, "same");
        Assert.Contains("named 'same' is attached", Assert.Throws<ArgumentException>(() => new LoraMixture(model, Options(), "same")).Message);
        using var mixture = new LoraMixture(model, Options());
        adapter.Activate();
        Assert.Contains("Adapter 'same' is active", Assert.Throws<InvalidOperationException>(mixture.Activate).Message);
        adapter.Deactivate();
        mixture.Activate();
        Assert.Contains("Mixture 'mixture' is active", Assert.Throws<InvalidOperationException>(adapter.Activate).Message);
        Assert.Contains("TopK = 3 is invalid; allowed: [1, NumExperts = 2]",
            Assert.ThrowsAny<ArgumentException>(() => new LoraMixture(model, Options(experts: 2, topK: 3), "bad")).Message);
        Assert.Contains("Lora.Rank = 0 is invalid",
            Assert.ThrowsAny<ArgumentException>(() => new LoraMixture(model, new LoraMixtureOptions { Lora = new LoraOptions { Rank = 0 } }, "bad")).Message);
        mixture.Dispose();
        adapter.Dispose();
        Assert.All(model.parameters(), p => Assert.True(p.requires_grad));
    }
}
