using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Training.Optimization;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Tests.Optimization;

/// <summary>
/// A real <see cref="MoeForCausalLM"/> with every kind of parameter (a dense layer then a MoE layer, deep, simple and
/// shared experts, a noisy router, biases on), and the group of each of its parameters written out by hand.
/// </summary>
internal static class RealModel
{
    public static MoeModelOptions Options() => new()
    {
        VocabSize = 11, ContextLength = 8, HiddenSize = 8, NumHeads = 2, NumLayers = 2, MoeEvery = 2,
        NumExperts = 3, DeepExperts = 1, TopK = 2, SharedExpert = true, Router = RouterKind.NoisyTopK, Bias = true,
        ExpertMultiplier = 1, DenseMultiplier = 1,
    };

    /// <summary>Each parameter: its <see cref="GroupedAdamW"/> group and its clipping group (yinghub-v2's router/experts/other).</summary>
    public static readonly (string Name, string AdamW, string Clip)[] Groups =
    [
        ("embed_tokens.weight", "no_decay", "other"),
        ("embed_positions.weight", "no_decay", "other"),
        ("layers.0.input_layernorm.weight", "no_decay", "other"),
        ("layers.0.input_layernorm.bias", "no_decay", "other"),
        ("layers.0.self_attn.qkv_proj.weight", "decay", "other"),
        ("layers.0.self_attn.qkv_proj.bias", "no_decay", "other"),
        ("layers.0.self_attn.o_proj.weight", "decay", "other"),
        ("layers.0.self_attn.o_proj.bias", "no_decay", "other"),
        ("layers.0.post_attention_layernorm.weight", "no_decay", "other"),
        ("layers.0.post_attention_layernorm.bias", "no_decay", "other"),
        ("layers.0.mlp.ffn.fc1.weight", "decay", "other"),
        ("layers.0.mlp.ffn.fc1.bias", "no_decay", "other"),
        ("layers.0.mlp.ffn.fc2.weight", "decay", "other"),
        ("layers.0.mlp.ffn.fc2.bias", "no_decay", "other"),
        ("layers.1.input_layernorm.weight", "no_decay", "other"),
        ("layers.1.input_layernorm.bias", "no_decay", "other"),
        ("layers.1.self_attn.qkv_proj.weight", "decay", "other"),
        ("layers.1.self_attn.qkv_proj.bias", "no_decay", "other"),
        ("layers.1.self_attn.o_proj.weight", "decay", "other"),
        ("layers.1.self_attn.o_proj.bias", "no_decay", "other"),
        ("layers.1.post_attention_layernorm.weight", "no_decay", "other"),
        ("layers.1.post_attention_layernorm.bias", "no_decay", "other"),
        ("layers.1.block_sparse_moe.gate.weight", "router_decay", "router"),
        ("layers.1.block_sparse_moe.gate.bias", "router_no_decay", "router"),
        ("layers.1.block_sparse_moe.gate.noise.weight", "router_decay", "router"),
        ("layers.1.block_sparse_moe.gate.noise.bias", "router_no_decay", "router"),
        ("layers.1.block_sparse_moe.gate.noise_temperature", "router_no_decay", "router"),
        ("layers.1.block_sparse_moe.experts.fc1.weight", "decay", "experts"),
        ("layers.1.block_sparse_moe.experts.fc1.bias", "no_decay", "experts"),
        ("layers.1.block_sparse_moe.experts.fc2.weight", "decay", "experts"),
        ("layers.1.block_sparse_moe.experts.fc2.bias", "no_decay", "experts"),
        ("layers.1.block_sparse_moe.deep_experts.fc1.weight", "decay", "experts"),
        ("layers.1.block_sparse_moe.deep_experts.fc1.bias", "no_decay", "experts"),
        ("layers.1.block_sparse_moe.deep_experts.fc2.weight", "decay", "experts"),
        ("layers.1.block_sparse_moe.deep_experts.fc2.bias", "no_decay", "experts"),
        ("layers.1.block_sparse_moe.deep_experts.fc3.weight", "decay", "experts"),
        ("layers.1.block_sparse_moe.deep_experts.fc3.bias", "no_decay", "experts"),
        ("layers.1.block_sparse_moe.shared_expert.ffn.fc1.weight", "decay", "experts"),
        ("layers.1.block_sparse_moe.shared_expert.ffn.fc1.bias", "no_decay", "experts"),
        ("layers.1.block_sparse_moe.shared_expert.ffn.fc2.weight", "decay", "experts"),
        ("layers.1.block_sparse_moe.shared_expert.ffn.fc2.bias", "no_decay", "experts"),
        ("norm.weight", "no_decay", "other"),
        ("norm.bias", "no_decay", "other"),
        ("lm_head.weight", "decay", "other"),
    ];

    /// <summary>The table's names in <paramref name="group"/> of column <paramref name="column"/>, sorted.</summary>
    public static string[] Expected(Func<(string Name, string AdamW, string Clip), string> column, string group) =>
        Groups.Where(g => column(g) == group).Select(g => g.Name).Order(StringComparer.Ordinal).ToArray();

    /// <summary>The model's parameter names are exactly the table's (a renamed key must update the table).</summary>
    public static void AssertTableCoversModel(MoeForCausalLM model) =>
        Assert.Equal(Groups.Select(g => g.Name).Order(StringComparer.Ordinal), model.named_parameters().Select(p => p.name).Order(StringComparer.Ordinal));
}

public class GroupedGradientClipperTests
{
    private const double Eps = 1e-6;

    /// <summary>
    /// The parameters of a real model with known gradients per group, scaled by the group of the hand-written table;
    /// the simple experts got no tokens, so their gradients are null (the deep and shared experts' are not). The model owns the parameters: dispose it.
    /// </summary>
    private static (MoeForCausalLM Model, List<(string Name, Parameter P, float[]? Grad)> Parameters) Make(float routerScale, float expertScale, float otherScale)
    {
        var model = new MoeForCausalLM(RealModel.Options());
        var list = new List<(string, Parameter, float[]?)>();
        int k = 1;
        foreach (var (name, p) in model.named_parameters())
        {
            float[]? g = null;
            if (!name.Contains("block_sparse_moe.experts."))
            {
                float scale = GroupOf(name) switch { "router" => routerScale, "experts" => expertScale, _ => otherScale };
                g = new float[p.numel()];
                for (int i = 0; i < g.Length; i++) g[i] = scale * (float)Math.Sin(k * 1.7 + i * 0.9) / (float)Math.Sqrt(g.Length); // deterministic, mixed signs
                p.grad = tensor(g).reshape(p.shape);
            }

            k++;
            list.Add((name, p, g));
        }

        return (model, list);
    }

    private static double Norm(IEnumerable<float[]> grads) => Math.Sqrt(grads.Sum(g => g.Sum(x => (double)x * x)));

    private static string GroupOf(string name) => RealModel.Groups.Single(g => g.Name == name).Clip;

    /// <summary>The independent reference: per-parameter loops over host arrays.</summary>
    private static (double[] Norms, Dictionary<string, float[]> Clipped) Naive(List<(string Name, Parameter P, float[]? Grad)> ps, double globalMax)
    {
        var limits = new Dictionary<string, double> { ["router"] = 0.5, ["experts"] = 2.0, ["other"] = 1.0 };
        string[] order = ["router", "experts", "other"];
        var withGrad = ps.Where(x => x.Grad is not null).ToList();
        double global = Norm(withGrad.Select(x => x.Grad!));
        var groupNorm = order.ToDictionary(g => g, g => Norm(withGrad.Where(x => GroupOf(x.Name) == g).Select(x => x.Grad!)));
        var groupCoef = order.ToDictionary(g => g, g => Math.Min(1.0, limits[g] / (groupNorm[g] + Eps)));
        double after = Math.Sqrt(order.Sum(g => Math.Pow(groupNorm[g] * groupCoef[g], 2)));
        double globalCoef = Math.Min(1.0, globalMax / (after + Eps));
        var clipped = withGrad.ToDictionary(x => x.Name, x => x.Grad!.Select(v => (float)(v * groupCoef[GroupOf(x.Name)] * globalCoef)).ToArray());
        return ([global, .. order.Select(g => groupNorm[g]), after], clipped);
    }

    private static void AssertMatchesNaive(float routerScale, float expertScale, float otherScale, double globalMax)
    {
        var (model, ps) = Make(routerScale, expertScale, otherScale);
        using var _ = model;
        var (expectedNorms, expectedGrads) = Naive(ps, globalMax);
        using var clipper = new GroupedGradientClipper(ps.Select(x => (x.Name, x.P)), new GradientClipOptions());
        using (var norms = clipper.ClipGradients(globalMax))
        {
            float[] actual = norms.data<float>().ToArray();
            Assert.Equal(expectedNorms.Length, actual.Length);
            for (int i = 0; i < actual.Length; i++) Assert.Equal(expectedNorms[i], actual[i], 1e-5 * Math.Max(1, expectedNorms[i]));
        }

        foreach (var (name, p, grad) in ps)
        {
            using var g = p.grad;
            if (grad is null)
            {
                Assert.Null(g);
                continue;
            }

            float[] actual = g!.data<float>().ToArray();
            for (int i = 0; i < actual.Length; i++) Assert.Equal(expectedGrads[name][i], actual[i], 1e-6);
        }
    }

    [Fact]
    public void RouterClippedOthersUnderLimit() => AssertMatchesNaive(routerScale: 1f, expertScale: 0.1f, otherScale: 0.1f, globalMax: 10);

    [Fact]
    public void AllGroupsAndGlobalClipped() => AssertMatchesNaive(routerScale: 3f, expertScale: 5f, otherScale: 4f, globalMax: 1.5);

    [Fact]
    public void NothingClipped() => AssertMatchesNaive(routerScale: 0.01f, expertScale: 0.01f, otherScale: 0.01f, globalMax: 1);

    [Fact]
    public void GroupBelowItsLimitIsBitIdentical()
    {
        var (model, ps) = Make(routerScale: 2f, expertScale: 0.05f, otherScale: 0.05f);
        using var __ = model;
        using var clipper = new GroupedGradientClipper(ps.Select(x => (x.Name, x.P)), new GradientClipOptions());
        using var _ = clipper.ClipGradients(double.PositiveInfinity);
        foreach (var (name, p, grad) in ps.Where(x => x.Grad is not null && GroupOf(x.Name) != "router"))
        {
            using var g = p.grad;
            Assert.Equal(grad, g!.data<float>().ToArray()); // exact
        }
    }

    [Fact]
    public void ClassificationOfARealModel()
    {
        var (model, ps) = Make(1, 1, 1);
        using var _ = model;
        RealModel.AssertTableCoversModel(model);
        using var clipper = new GroupedGradientClipper(ps.Select(x => (x.Name, x.P)), new GradientClipOptions());
        Assert.Equal(["global", "router", "experts", "other", "global_after_group_clip"], clipper.NormLabels);
        foreach (string group in (string[])["router", "experts", "other"])
            Assert.Equal(RealModel.Expected(g => g.Clip, group), clipper.ParameterNamesByGroup[group].Order(StringComparer.Ordinal));
        Assert.Equal([0.5, 2.0, 1.0], clipper.GroupMaxNorms);
    }

    [Fact]
    public void NoLeakedTensorsAcrossSteps()
    {
        var (model, ps) = Make(1, 1, 1);
        using var _ = model;
        using var clipper = new GroupedGradientClipper(ps.Select(x => (x.Name, x.P)), new GradientClipOptions());
        clipper.ClipGradients(1).Dispose(); // warm up
        DisposeScopeManager.Statistics.Reset();
        for (int i = 0; i < 5; i++) clipper.ClipGradients(1).Dispose();
        Assert.Equal(0, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void RejectsBadInput()
    {
        var (model, ps) = Make(1, 1, 1);
        using var _ = model;
        using var clipper = new GroupedGradientClipper(ps.Select(x => (x.Name, x.P)), new GradientClipOptions());
        Assert.Equal("globalMaxNorm", Assert.Throws<ArgumentException>(() => clipper.ClipGradients(0)).ParamName);
        Assert.Throws<ArgumentException>(() => clipper.ClipGradients(double.NaN));
        var bad = new GradientClipOptions { OtherMaxNorm = -1 };
        bad.Groups[0].MaxNorm = 0;
        var ex = Assert.Throws<ArgumentException>(() => new GroupedGradientClipper([], bad));
        Assert.Equal("OtherMaxNorm", ex.ParamName);
        Assert.Contains("Groups[0].MaxNorm = 0", ex.Message);
    }
}
