using TorchSharp;
using TorchSharp.Modules;
using YingHub.Moe.Training.Optimization;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Tests.Optimization;

public class GroupedGradientClipperTests
{
    private const double Eps = 1e-6;

    /// <summary>Tiny named parameters with known gradients (null for the expert that got no tokens).</summary>
    private static List<(string Name, Parameter P, float[]? Grad)> Make(float routerScale, float expertScale, float otherScale)
    {
        var specs = new (string Name, long[] Shape, float Scale, bool HasGrad)[]
        {
            ("layers.0.block_sparse_moe.gate.weight", [2, 3], routerScale, true),
            ("layers.0.block_sparse_moe.noise.weight", [2, 3], routerScale, true),
            ("layers.0.block_sparse_moe.experts.0.fc1.weight", [3, 4], expertScale, true),
            ("layers.0.block_sparse_moe.experts.1.fc1.weight", [3, 4], expertScale, false),
            ("layers.0.block_sparse_moe.shared_expert.fc2.bias", [3], expertScale, true),
            ("layers.0.self_attn.qkv_proj.weight", [4, 3], otherScale, true),
            ("embed_tokens.weight", [5, 3], otherScale, true),
        };
        var list = new List<(string, Parameter, float[]?)>();
        int k = 1;
        foreach (var s in specs)
        {
            var p = new Parameter(zeros(s.Shape));
            float[]? g = null;
            if (s.HasGrad)
            {
                g = new float[s.Shape.Aggregate(1L, (a, b) => a * b)];
                for (int i = 0; i < g.Length; i++) g[i] = s.Scale * (float)Math.Sin(k * 1.7 + i * 0.9); // deterministic, mixed signs
                p.grad = tensor(g).reshape(s.Shape);
            }

            k++;
            list.Add((s.Name, p, g));
        }

        return list;
    }

    private static double Norm(IEnumerable<float[]> grads) => Math.Sqrt(grads.Sum(g => g.Sum(x => (double)x * x)));

    private static string GroupOf(string name) =>
        name.Contains("block_sparse_moe.gate") || name.Contains("block_sparse_moe.noise") ? "router"
        : name.Contains("block_sparse_moe.experts") || name.Contains("shared_expert") ? "experts" : "other";

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
        var ps = Make(routerScale, expertScale, otherScale);
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
        var ps = Make(routerScale: 2f, expertScale: 0.05f, otherScale: 0.05f);
        using var clipper = new GroupedGradientClipper(ps.Select(x => (x.Name, x.P)), new GradientClipOptions());
        using var _ = clipper.ClipGradients(double.PositiveInfinity);
        foreach (var (name, p, grad) in ps.Where(x => x.Grad is not null && GroupOf(x.Name) != "router"))
        {
            using var g = p.grad;
            Assert.Equal(grad, g!.data<float>().ToArray()); // exact
        }
    }

    [Fact]
    public void ClassificationAndLabels()
    {
        var ps = Make(1, 1, 1);
        using var clipper = new GroupedGradientClipper(ps.Select(x => (x.Name, x.P)), new GradientClipOptions());
        Assert.Equal(["global", "router", "experts", "other", "global_after_group_clip"], clipper.NormLabels);
        Assert.Equal(2, clipper.ParameterNamesByGroup["router"].Count);
        Assert.Equal(3, clipper.ParameterNamesByGroup["experts"].Count);
        Assert.Equal(["layers.0.self_attn.qkv_proj.weight", "embed_tokens.weight"], clipper.ParameterNamesByGroup["other"]);
        Assert.Equal([0.5, 2.0, 1.0], clipper.GroupMaxNorms);
    }

    [Fact]
    public void NoLeakedTensorsAcrossSteps()
    {
        var ps = Make(1, 1, 1);
        using var clipper = new GroupedGradientClipper(ps.Select(x => (x.Name, x.P)), new GradientClipOptions());
        clipper.ClipGradients(1).Dispose(); // warm up
        DisposeScopeManager.Statistics.Reset();
        for (int i = 0; i < 5; i++) clipper.ClipGradients(1).Dispose();
        Assert.Equal(0, DisposeScopeManager.Statistics.ThreadTotalLiveCount);
    }

    [Fact]
    public void RejectsBadInput()
    {
        var ps = Make(1, 1, 1);
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
