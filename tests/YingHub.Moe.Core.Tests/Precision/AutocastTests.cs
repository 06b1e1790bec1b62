using TorchSharp;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Precision;
using YingHub.Moe.Core.Tests.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Precision;

public class AutocastTests
{
    [Fact]
    public void Linear_under_bf16_is_the_product_of_the_rounded_operands_and_stays_bf16()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(3);
        var x = torch.randn(5, 7);
        var w = torch.randn(4, 7);
        var b = torch.randn(4);
        Tensor y;
        using (Autocast.Enable(ScalarType.BFloat16)) y = Autocast.Linear(x, w, b);
        Assert.Equal(ScalarType.BFloat16, y.dtype);

        // independent reference: round each operand to bf16, multiply in float64, round the result to bf16
        static double[,] Rounded(Tensor t) { var v = Tiny.Values(t.to(ScalarType.BFloat16)); var m = new double[t.shape[0], t.shape.Length > 1 ? t.shape[1] : 1]; for (int i = 0; i < v.Length; i++) m[i / m.GetLength(1), i % m.GetLength(1)] = v[i]; return m; }
        double[,] xr = Rounded(x), wr = Rounded(w);
        double[] br = Tiny.Values(b.to(ScalarType.BFloat16));
        double[] got = Tiny.Values(y);
        for (int i = 0; i < 5; i++)
        {
            for (int o = 0; o < 4; o++)
            {
                double expected = br[o];
                for (int j = 0; j < 7; j++) expected += xr[i, j] * wr[o, j];
                double tol = 1e-2 * Math.Max(1, Math.Abs(expected)); // bf16 keeps 8 bits of mantissa: relative error <= 2^-8 per rounding
                Assert.True(Math.Abs(got[i * 4 + o] - expected) <= tol, $"y[{i},{o}] = {got[i * 4 + o]}, expected {expected}");
            }
        }

        Assert.Equal(ScalarType.Float32, Autocast.Linear(x, w, b).dtype); // the scope is over
    }

    [Fact]
    public void Scopes_nest_and_restore_and_only_low_precision_types_are_accepted()
    {
        Assert.Null(Autocast.CurrentType);
        using (Autocast.Enable(ScalarType.BFloat16))
        {
            using (Autocast.Disable()) Assert.Null(Autocast.CurrentType);
            Assert.Equal(ScalarType.BFloat16, Autocast.CurrentType);
            using (Autocast.Enable(ScalarType.Float16)) Assert.Equal(ScalarType.Float16, Autocast.CurrentType);
            Assert.Equal(ScalarType.BFloat16, Autocast.CurrentType);
        }

        Assert.Null(Autocast.CurrentType);
        var ex = Assert.Throws<ArgumentException>(() => Autocast.Enable(ScalarType.Float32));
        Assert.Equal("dtype", ex.ParamName);
        Assert.Contains("Float32", ex.Message);
    }

    [Theory]
    [InlineData(ScalarType.BFloat16, 0.03)]
    [InlineData(ScalarType.Float16, 0.01)]
    public void Model_loss_and_gradients_under_autocast_stay_close_to_fp32_and_the_master_weights_stay_fp32(ScalarType dtype, double lossTolerance)
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(11);
        using var model = new MoeForCausalLM(Tiny.Options(o => { o.HiddenSize = 64; o.NumHeads = 4; o.SharedExpert = true; o.DeepExperts = 1; }));
        model.eval(); // no dropout or router noise: the two passes differ only by precision
        var ids = torch.randint(0, 19, [3, 12]);
        var labels = torch.randint(0, 19, [3, 12]);

        var reference = model.call(new CausalLMInput(ids, labels));
        reference.LmLoss!.backward();
        var referenceGrads = model.parameters().Select(p => p.grad!.clone()).ToArray();
        model.zero_grad();

        CausalLMOutput mixed;
        using (Autocast.Enable(dtype)) mixed = model.call(new CausalLMInput(ids, labels));
        mixed.LmLoss!.backward(); // outside the scope, as a trainer does

        Assert.Equal(ScalarType.Float32, mixed.Logits.dtype);
        Assert.Equal(ScalarType.Float32, mixed.LmLoss.dtype);
        double fp32 = reference.LmLoss.item<float>(), low = mixed.LmLoss.item<float>();
        Assert.True(Math.Abs(fp32 - low) <= lossTolerance, $"{dtype} loss {low} vs fp32 {fp32}");
        Assert.NotEqual(fp32, low); // the products really ran in low precision

        var parameters = model.parameters().ToArray();
        for (int i = 0; i < parameters.Length; i++)
        {
            Assert.Equal(ScalarType.Float32, parameters[i].dtype);
            var g = parameters[i].grad!;
            Assert.Equal(ScalarType.Float32, g.dtype);
            double cosine = torch.nn.functional.cosine_similarity(g.flatten(), referenceGrads[i].flatten(), dim: 0).item<float>();
            double norm = referenceGrads[i].norm().item<float>();
            if (norm > 1e-4) Assert.True(cosine > 0.98, $"parameter {i}: gradient cosine {cosine} to fp32");
        }
    }
}
