using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Optimization;
using YingHub.Moe.Training.Schedules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Tests.Optimization;

public class GroupedAdamWTests
{
    [Fact]
    public void A_learning_rate_group_rule_takes_its_parameters_out_of_the_built_in_groups()
    {
        using var model = new MoeForCausalLM(RealModel.Options());
        var options = new AdamWGroupOptions
        {
            WeightDecay = 0.1, RouterLearningRateMultiplier = 0.5,
            // the head, and the router's gate (a router parameter: the rule wins over the router rule)
            LearningRateGroups = [new LearningRateGroupRule("picked", ["lm_head", "block_sparse_moe.gate.weight"], 3)],
        };
        using var adamw = GroupedAdamW.Create(model.named_parameters(), options);
        Assert.Equal(["decay", "no_decay", "router_decay", "router_no_decay", "picked_decay"], adamw.Groups.Select(g => g.Name));
        var groups = adamw.Groups.ToDictionary(g => g.Name);
        var picked = model.named_parameters().Select(p => p.name)
            .Where(n => n == "lm_head.weight" || n.EndsWith("block_sparse_moe.gate.weight", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToArray();
        Assert.True(picked.Length >= 2);
        Assert.Equal(picked, groups["picked_decay"].ParameterNames.Order(StringComparer.Ordinal));
        foreach (var name in picked)
            Assert.DoesNotContain(adamw.Groups.Where(g => g.Name != "picked_decay"), g => g.ParameterNames.Contains(name));
        Assert.Equal(0.1, groups["picked_decay"].WeightDecay);
        Assert.Equal([1.0, 1.0, 0.5, 0.5, 3.0], adamw.LearningRateMultipliers);
        Assert.Equal(3e-3, adamw.Optimizer.ParamGroups.Cast<AdamW.ParamGroup>().Last().LearningRate, 12);
        Assert.Equal(model.parameters().Count(), adamw.Groups.Sum(g => g.ParameterNames.Count));
    }

    [Fact]
    public void Learning_rate_group_rules_are_validated_by_field()
    {
        var ex = Assert.Throws<ArgumentException>(() => new AdamWGroupOptions
        {
            LearningRateGroups =
            [
                new LearningRateGroupRule("value", ["summary"], 0),
                new LearningRateGroupRule("value", [""]),
                new LearningRateGroupRule("Router!", ["x"]),
            ],
        }.ThrowIfInvalid());
        Assert.Contains("LearningRateGroups[0].LearningRateMultiplier = 0 is invalid", ex.Message);
        Assert.Contains("LearningRateGroups[1].Name = value is invalid", ex.Message);
        Assert.Contains("LearningRateGroups[1].NameContains", ex.Message);
        Assert.Contains("LearningRateGroups[2].Name = Router! is invalid", ex.Message);
    }

    [Fact]
    public void GroupMembershipOfARealModel()
    {
        using var model = new MoeForCausalLM(RealModel.Options());
        RealModel.AssertTableCoversModel(model);

        using var adamw = GroupedAdamW.Create(model.named_parameters(), new AdamWGroupOptions { WeightDecay = 0.1, RouterLearningRateMultiplier = 0.5 });
        Assert.Equal(["decay", "no_decay", "router_decay", "router_no_decay"], adamw.Groups.Select(g => g.Name));
        foreach (var group in adamw.Groups)
            Assert.Equal(RealModel.Expected(g => g.AdamW, group.Name), group.ParameterNames.Order(StringComparer.Ordinal));

        var groups = adamw.Groups.ToDictionary(g => g.Name);
        Assert.Equal(0.1, groups["decay"].WeightDecay);
        Assert.Equal(0.0, groups["no_decay"].WeightDecay);
        Assert.Equal(0.1, groups["router_decay"].WeightDecay);
        Assert.Equal(0.0, groups["router_no_decay"].WeightDecay);
        Assert.Equal(0.5, groups["router_decay"].LearningRateMultiplier);
        Assert.Equal([1.0, 1.0, 0.5, 0.5], adamw.LearningRateMultipliers);
        Assert.Equal(2 * 3 * 8, groups["router_decay"].ElementCount); // gate (E, C) and noise (E, C)
        Assert.Equal(3 + 3 + 1, groups["router_no_decay"].ElementCount); // gate bias (E), noise bias (E), temperature ()
        Assert.Contains("router_decay: weight_decay=0.1, lr_multiplier=0.5", adamw.Describe());

        // The optimizer's own groups carry the same decay and learning rates.
        var optGroups = adamw.Optimizer.ParamGroups.Cast<AdamW.ParamGroup>().ToArray();
        Assert.Equal([0.1, 0.0, 0.1, 0.0], optGroups.Select(g => g.Options.weight_decay!.Value));
        Assert.Equal([1e-3, 1e-3, 5e-4, 5e-4], optGroups.Select(g => g.LearningRate));

        // The applier drives the groups with the multipliers.
        new LearningRateApplier(adamw.Optimizer, new ConstantSchedule(2e-3), adamw.LearningRateMultipliers).Apply(0);
        Assert.Equal([2e-3, 2e-3, 1e-3, 1e-3], optGroups.Select(g => g.LearningRate));
    }

    /// <summary>A decayed step leaves a stacked (count, out) expert bias untouched when its gradient is zero: biases are not decayed.</summary>
    [Fact]
    public void StackedBiasesAreNotDecayed()
    {
        using var model = new MoeForCausalLM(RealModel.Options());
        var named = model.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var bias = named["layers.1.block_sparse_moe.experts.fc1.bias"];
        var weight = named["layers.1.block_sparse_moe.experts.fc1.weight"];
        Assert.Equal(2, bias.dim()); // (2 simple experts, H): shaped like a matrix
        using (no_grad())
        {
            bias.fill_(1f);
            weight.fill_(1f);
        }

        using var adamw = GroupedAdamW.Create(model.named_parameters(), new AdamWGroupOptions { LearningRate = 0.1, WeightDecay = 0.5 });
        foreach (var p in model.parameters()) p.grad = zeros_like(p);
        adamw.Optimizer.step();
        Assert.All(bias.data<float>().ToArray(), x => Assert.Equal(1f, x));          // no decay
        Assert.All(weight.data<float>().ToArray(), x => Assert.Equal(0.95f, x, 1e-6f)); // 1 × (1 − lr · wd)
    }

    [Fact]
    public void FrozenAndTiedParametersHandled()
    {
        var shared = new Parameter(ones(3, 2));
        var frozen = new Parameter(ones(3, 2), requires_grad: false);
        using var adamw = GroupedAdamW.Create([("embed_tokens.weight", shared), ("lm_head.weight", shared), ("frozen.weight", frozen)], new AdamWGroupOptions());
        var group = Assert.Single(adamw.Groups);
        Assert.Equal("no_decay", group.Name);
        Assert.Equal(["embed_tokens.weight"], group.ParameterNames);
        Assert.Equal("parameters", Assert.Throws<ArgumentException>(() => GroupedAdamW.Create([("frozen.weight", frozen)], new AdamWGroupOptions())).ParamName);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TwoStepsEqualHandComputedAdamW(bool fused)
    {
        const double Lr = 0.01, Wd = 0.1, B1 = 0.9, B2 = 0.999, Eps = 1e-8;
        double[] p = [1.0, -2.0, 3.0, 0.5];
        double[][] grads = [[0.1, 0.2, -0.3, 0.0], [-0.05, 0.4, 0.1, 2.0]];
        var param = new Parameter(tensor(p.Select(x => (float)x).ToArray()).reshape(2, 2));
        using var adamw = GroupedAdamW.Create([("layers.0.mlp.weight", param)],
            new AdamWGroupOptions { LearningRate = Lr, WeightDecay = Wd, Beta1 = B1, Beta2 = B2, Epsilon = Eps, Fused = fused });
        Assert.Equal("decay", Assert.Single(adamw.Groups).Name);
        Assert.Equal(fused, adamw.IsFused); // the fused kernel exists in this libtorch: no silent fallback

        double[] m = new double[4], v = new double[4];
        for (int t = 1; t <= grads.Length; t++)
        {
            param.grad = tensor(grads[t - 1].Select(x => (float)x).ToArray()).reshape(2, 2);
            adamw.Optimizer.step();
            for (int i = 0; i < p.Length; i++)
            {
                double g = grads[t - 1][i];
                p[i] *= 1 - Lr * Wd;
                m[i] = B1 * m[i] + (1 - B1) * g;
                v[i] = B2 * v[i] + (1 - B2) * g * g;
                double mHat = m[i] / (1 - Math.Pow(B1, t));
                double vHat = v[i] / (1 - Math.Pow(B2, t));
                p[i] -= Lr * mHat / (Math.Sqrt(vHat) + Eps);
            }

            float[] actual = param.data<float>().ToArray();
            for (int i = 0; i < p.Length; i++) Assert.Equal(p[i], actual[i], 1e-6);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void NullGradientIsUntouchedButZeroGradientIsDecayed(bool fused)
    {
        var used = new Parameter(ones(2, 2));
        var idleNone = new Parameter(ones(2, 2));
        var idleZero = new Parameter(ones(2, 2));
        using var adamw = GroupedAdamW.Create(
            [("layers.0.block_sparse_moe.experts.0.w", used), ("layers.0.block_sparse_moe.experts.1.w", idleNone), ("layers.0.block_sparse_moe.experts.2.w", idleZero)],
            new AdamWGroupOptions { LearningRate = 0.1, WeightDecay = 0.5, Fused = fused });
        for (int step = 0; step < 3; step++)
        {
            adamw.Optimizer.SetGradientsToNone();
            using (var g = idleNone.grad) Assert.Null(g);
            used.grad = full(2, 2, 0.3f);
            idleZero.grad = zeros(2, 2); // what in-place zero_grad() leaves behind
            adamw.Optimizer.step();
        }

        Assert.True(idleNone.data<float>().ToArray().All(x => x == 1f));
        Assert.True(idleZero.data<float>().ToArray().All(x => x < 1f)); // decayed by the zero gradient: the trap
        Assert.True(used.data<float>().ToArray().All(x => x < 1f));
    }

    /// <summary>
    /// The fused kernel against TorchSharp's per-parameter AdamW on the same grouped model (decay, no decay, router
    /// multiplier, a parameter that gets no gradient on some steps), including a rewind: each loads the other's state
    /// saved two steps earlier, so the fused step must take its step count from the loaded state.
    /// </summary>
    [Fact]
    public void FusedMatchesPerParameterAdamWAcrossSaveAndLoad()
    {
        using var a = new MoeForCausalLM(RealModel.Options());
        using var b = new MoeForCausalLM(RealModel.Options());
        using (no_grad())
        {
            foreach (var (pa, pb) in a.parameters().Zip(b.parameters())) pb.copy_(pa);
        }

        var options = new AdamWGroupOptions { LearningRate = 0.01, WeightDecay = 0.1, Beta2 = 0.99, RouterLearningRateMultiplier = 0.5 };
        using var fused = GroupedAdamW.Create(a.named_parameters(), options);
        using var plain = GroupedAdamW.Create(b.named_parameters(), new AdamWGroupOptions { LearningRate = 0.01, WeightDecay = 0.1, Beta2 = 0.99, RouterLearningRateMultiplier = 0.5, Fused = false });
        Assert.True(fused.IsFused);
        Assert.False(plain.IsFused);
        var generator = new torch.Generator(7);
        void Step(int t)
        {
            foreach (var ((name, pa), pb) in a.named_parameters().Zip(b.parameters()))
            {
                if (name.Contains("deep_experts") && t % 2 == 1)
                {
                    pa.grad = null; // an expert without tokens this step: skipped by both
                    pb.grad = null;
                    continue;
                }

                var g = randn(pa.shape, generator: generator);
                pa.grad = g;
                pb.grad = g.clone();
            }

            fused.Optimizer.step();
            plain.Optimizer.step();
        }

        for (int t = 0; t < 4; t++) Step(t);
        string dir = Directory.CreateTempSubdirectory("adamw").FullName;
        try
        {
            fused.SaveState(Path.Combine(dir, "fused.bin"));
            plain.SaveState(Path.Combine(dir, "plain.bin"));
            for (int t = 4; t < 6; t++) Step(t);
            // rewind both optimizers to step 4 from each other's file: the fused steps must count from 4 again, not 6
            fused.LoadState(Path.Combine(dir, "plain.bin"));
            plain.LoadState(Path.Combine(dir, "fused.bin"));
            using (var w = new BinaryWriter(File.Create(Path.Combine(dir, "sgd.bin")))) w.Write("SGD");
            Assert.Contains("'SGD' optimizer", Assert.Throws<InvalidDataException>(() => fused.LoadState(Path.Combine(dir, "sgd.bin"))).Message);
            File.WriteAllBytes(Path.Combine(dir, "empty.bin"), []);
            Assert.Contains("not an optimizer state", Assert.Throws<InvalidDataException>(() => fused.LoadState(Path.Combine(dir, "empty.bin"))).Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        for (int t = 6; t < 10; t++) Step(t);
        foreach (var ((name, pa), pb) in a.named_parameters().Zip(b.parameters()))
        {
            float[] x = pa.data<float>().ToArray(), y = pb.data<float>().ToArray();
            for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(x[i] - y[i]) < 1e-5, $"{name}[{i}]: fused {x[i]} vs per-parameter {y[i]}");
        }
    }

    /// <summary>
    /// Many fused steps while another thread forces garbage collections: the hyperparameters must reach the kernel
    /// intact (a temporary Scalar finalized before the native call read it once crashed a 5,000-step run).
    /// </summary>
    [Fact]
    public void FusedStepSurvivesGarbageCollections()
    {
        var p = new Parameter(ones(4, 4));
        using var adamw = GroupedAdamW.Create([("layers.0.mlp.weight", p)], new AdamWGroupOptions { LearningRate = 1e-3 });
        using var stop = new CancellationTokenSource();
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested) GC.Collect(0, GCCollectionMode.Forced, blocking: true);
        });
        collector.Start();
        try
        {
            for (int i = 0; i < 3000; i++)
            {
                using var scope = NewDisposeScope();
                p.grad = full(4, 4, 0.5f);
                adamw.Optimizer.step();
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }

        // 3000 steps of a constant gradient: Adam's update is lr per step (m̂/√v̂ = 1), with decoupled decay on top
        float[] w = p.data<float>().ToArray();
        Assert.All(w, x => Assert.InRange(x, -2.5f, -1.5f));
    }

    /// <summary>A parameter stored transposed (non-contiguous) takes the per-parameter step, with the same result.</summary>
    [Fact]
    public void NonContiguousParameterMatchesHandComputedStep()
    {
        var p = new Parameter(tensor(new float[] { 1, 2, 3, 4, 5, 6 }).reshape(2, 3).t()); // (3, 2), strides (1, 3)
        Assert.False(p.is_contiguous());
        using var adamw = GroupedAdamW.Create([("layers.0.mlp.weight", p)], new AdamWGroupOptions { LearningRate = 0.1, WeightDecay = 0 });
        var before = p.detach().contiguous().data<float>().ToArray();           // row-major (3, 2)
        float[] grad = [1, -2, -3, 4, 5, -6];
        p.grad = tensor(grad).reshape(3, 2);                                   // contiguous, unlike the parameter
        adamw.Optimizer.step();
        // the first Adam step moves every weight by lr against its gradient's sign (m̂ / √v̂ = ±1)
        float[] actual = p.contiguous().data<float>().ToArray();
        for (int i = 0; i < actual.Length; i++) Assert.Equal(before[i] - 0.1f * Math.Sign(grad[i]), actual[i], 1e-5f);
    }

    [Fact]
    public void SetGradientsToNoneOnPlainParameters()
    {
        var a = new Parameter(ones(2));
        a.grad = ones(2);
        GradientReset.SetGradientsToNone([a]);
        using var g = a.grad;
        Assert.Null(g);
    }

    [Fact]
    public void InvalidOptionsNamed()
    {
        var ex = Assert.Throws<ArgumentException>(() => new AdamWGroupOptions { Beta2 = 1.0, RouterLearningRateMultiplier = 0 }.ThrowIfInvalid());
        Assert.Equal("Beta2", ex.ParamName);
        Assert.Contains("RouterLearningRateMultiplier = 0", ex.Message);
    }
}
