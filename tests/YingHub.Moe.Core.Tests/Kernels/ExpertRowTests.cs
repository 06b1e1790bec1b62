using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Testing;

namespace YingHub.Moe.Core.Tests.Kernels;

public class ExpertRowTests
{
    [SimdKernelTheory]
    [InlineData(ExpertActivation.Relu)]
    [InlineData(ExpertActivation.Gelu)]
    [InlineData(ExpertActivation.SwiGlu)]
    public unsafe void Activations_in_place_equal_their_formulas_in_doubles_including_saturated_inputs(ExpertActivation activation)
    {
        // 8-wide blocks and a scalar tail; values from the saturated ends (exp overflows to ∞ or underflows to 0) to tiny ones
        float[] values = [-100f, -30f, -9.5f, -3f, -1f, -0.25f, -1e-4f, 0f, 1e-4f, 0.3f, 1f, 2.5f, 7f, 12f, 30f, 100f, -0.7f, 0.9f, -5f, 4f, 60f];
        int m = activation == ExpertActivation.SwiGlu ? 2 * values.Length : values.Length;
        var h = new float[m];
        values.CopyTo(h, 0);
        if (activation == ExpertActivation.SwiGlu)
            for (int i = 0; i < values.Length; i++) h[values.Length + i] = 1.5f - 0.2f * i; // the "up" half

        fixed (float* p = h) ExpertRow.Activate(p, m, activation);
        for (int i = 0; i < values.Length; i++)
        {
            double v = values[i];
            double expected = activation switch
            {
                ExpertActivation.Relu => Math.Max(v, 0),
                ExpertActivation.Gelu => 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v))),
                _ => v / (1 + Math.Exp(-v)) * (1.5 - 0.2 * i),
            };
            Assert.True(Math.Abs(h[i] - expected) <= 1e-6 * Math.Max(1, Math.Abs(expected)), $"{activation}({v}) = {h[i]}, expected {expected}");
        }
    }
}
