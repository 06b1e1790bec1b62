using System.Buffers;
using System.Runtime.Intrinsics;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Kernels;

/// <summary>One layer of an expert for <see cref="ExpertRow"/>: an input-major weight (in, out) and its bias (out), if any.</summary>
internal readonly record struct ExpertLayer(Tensor Weight, Tensor? Bias);

/// <summary>
/// A decoding token through its chosen experts on the CPU, in managed code: <c>y = Σ_j gate_j · expert_j(x)</c>. Each
/// expert's products run in <see cref="RowProduct"/>'s kernel and its activations in place on a scratch row, so
/// nothing is allocated or dispatched between them; libtorch's path makes about eight tensors per expert (the
/// products, activations, gate scaling and sum), a few microseconds each. It computes what
/// <see cref="Modules.ExpertBank"/> computes (same activations, float32), up to rounding.
/// </summary>
internal static unsafe class ExpertRow
{
    private const float GeluScale = 0.7978845608028654f; // √(2/π)
    private const float GeluCubic = 0.044715f;

    /// <summary>
    /// Whether the managed path runs: <see cref="RowProduct.Runs"/> for x (1, C), and every layer a dense float32 CPU
    /// (in, out) weight whose input matches the previous layer's output (after the activation: SwiGLU halves it) and whose
    /// last output is C.
    /// </summary>
    public static bool Applies(Tensor x, IReadOnlyList<ExpertLayer[]> experts, ExpertActivation activation) =>
        RowProduct.Runs(x) && LayersFit(x.size(-1), experts, activation);

    /// <summary>
    /// Whether every expert's layers are dense float32 CPU (in, out) weights, each input matching the previous layer's
    /// output after the activation (SwiGLU halves it), from C in to C out.
    /// </summary>
    internal static bool LayersFit(long c, IEnumerable<ExpertLayer[]> experts, ExpertActivation activation)
    {
        foreach (var layers in experts)
        {
            long width = c;
            for (int l = 0; l < layers.Length; l++)
            {
                var (w, b) = layers[l];
                if (!RowProduct.IsDenseFloat(w, b) || !w.is_contiguous() || w.size(0) != width || (b is not null && b.size(0) != w.size(1))
                    || w.numel() > int.MaxValue / sizeof(float))
                    return false;
                width = l < layers.Length - 1 && activation == ExpertActivation.SwiGlu ? w.size(1) / 2 : w.size(1);
            }

            if (width != c) return false;
        }

        return true;
    }

    /// <summary>
    /// <c>Σ_j gates[j] · expert_j(x)</c> as a new (1, C) tensor; check <see cref="Applies"/> first. x (1, C); expert j is
    /// <paramref name="experts"/>[j], its layers applied in order with <paramref name="activation"/> between them.
    /// </summary>
    public static Tensor Combine(Tensor x, IReadOnlyList<ExpertLayer[]> experts, ReadOnlySpan<float> gates, ExpertActivation activation)
    {
        int c = (int)x.size(-1);
        int widest = 0;
        foreach (var layers in experts)
            foreach (var layer in layers) widest = Math.Max(widest, (int)layer.Weight.size(1));
        var y = torch.zeros([1, c], ScalarType.Float32);
        float[] scratch = ArrayPool<float>.Shared.Rent(2 * widest);
        try
        {
            fixed (float* buffers = scratch)
            {
                float* input = RowProduct.Data(x), output = RowProduct.Data(y);
                for (int j = 0; j < experts.Count; j++)
                {
                    float* h = input;
                    var layers = experts[j];
                    for (int l = 0; l < layers.Length; l++)
                    {
                        var (w, b) = layers[l];
                        int n = (int)w.size(0), m = (int)w.size(1);
                        float* next = buffers + (l % 2) * widest; // ping-pong between the two scratch rows
                        RowProduct.InputMajor(h, RowProduct.Data(w), b is null ? null : RowProduct.Data(b), next, n, m, RowProduct.Wide);
                        if (l < layers.Length - 1) Activate(next, m, activation);
                        h = next;
                    }

                    RowProduct.AddScaled(output, gates[j], h, c);
                }
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
        }

        return y;
    }

    /// <summary>
    /// The expert activation in place on h (m): ReLU; GELU (tanh approximation, as <see cref="Modules.ExpertBank"/>);
    /// SwiGLU: <c>silu(h[..m/2]) * h[m/2..]</c> into h[..m/2].
    /// </summary>
    internal static void Activate(float* h, int m, ExpertActivation activation)
    {
        int count = activation == ExpertActivation.SwiGlu ? m / 2 : m, i = 0;
        float* up = h + count; // SwiGLU's second half
        for (; i + 8 <= count; i += 8)
        {
            var v = Vector256.Load(h + i);
            v = activation switch
            {
                ExpertActivation.Relu => Vector256.Max(v, Vector256<float>.Zero),
                ExpertActivation.Gelu => Gelu(v),
                _ => v / (Vector256<float>.One + Vector256.Exp(-v)) * Vector256.Load(up + i),
            };
            v.Store(h + i);
        }

        for (; i < count; i++)
        {
            float v = h[i];
            h[i] = activation switch
            {
                ExpertActivation.Relu => MathF.Max(v, 0f),
                ExpertActivation.Gelu => 0.5f * v * (1f + MathF.Tanh(GeluScale * (v + GeluCubic * v * v * v))),
                _ => v / (1f + MathF.Exp(-v)) * up[i],
            };
        }
    }

    /// <summary>0.5 v (1 + tanh(√(2/π) (v + 0.044715 v³))), with tanh u = 1 − 2 / (e^{2u} + 1) (exact at ±∞).</summary>
    private static Vector256<float> Gelu(Vector256<float> v)
    {
        var u = Vector256.Create(GeluScale) * (v + Vector256.Create(GeluCubic) * v * v * v);
        var tanh = Vector256<float>.One - Vector256.Create(2f) / (Vector256.Exp(u + u) + Vector256<float>.One);
        return Vector256.Create(0.5f) * v * (Vector256<float>.One + tanh);
    }
}
