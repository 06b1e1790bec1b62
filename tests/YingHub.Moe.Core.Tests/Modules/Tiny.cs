using TorchSharp;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Modules;

/// <summary>Small shapes and helpers shared by the module tests.</summary>
internal static class Tiny
{
    public static MoeModelOptions Options(Action<MoeModelOptions>? change = null)
    {
        var o = new MoeModelOptions
        {
            VocabSize = 19, ContextLength = 12, HiddenSize = 16, NumHeads = 2, NumLayers = 2,
            NumExperts = 4, TopK = 2, ExpertMultiplier = 2, DenseMultiplier = 2, Activation = ExpertActivation.Relu,
        };
        change?.Invoke(o);
        return o;
    }

    /// <summary>Values of a tensor as doubles (any float dtype).</summary>
    public static double[] Values(Tensor t)
    {
        using var d = t.detach().to(ScalarType.Float64).contiguous();
        return d.data<double>().ToArray();
    }

    public static void AssertClose(Tensor expected, Tensor actual, double atol = 1e-5, double rtol = 1e-4)
    {
        Assert.Equal(expected.shape, actual.shape);
        double[] e = Values(expected), a = Values(actual);
        for (int i = 0; i < e.Length; i++)
        {
            double tol = atol + rtol * Math.Abs(e[i]);
            Assert.True(Math.Abs(e[i] - a[i]) <= tol, $"element {i}: expected {e[i]}, got {a[i]} (tolerance {tol})");
        }
    }

    public static Tensor Param(nn.Module module, string name) =>
        module.named_parameters().Single(p => p.name == name).parameter;
}
