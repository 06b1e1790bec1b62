using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using TorchSharp;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Core.Precision;
using YingHub.Moe.Testing;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Kernels;

public class RowProductTests
{
    // shapes that reach every part of the kernels: 64-column blocks, 8-column blocks, single columns, 4-row groups,
    // single rows, vector-length and scalar tails along the input
    public static TheoryData<int, int, bool> Shapes() => new()
    {
        { 192, 768, true }, { 768, 192, false }, { 16, 72, true }, { 33, 130, true }, { 7, 5, false }, { 1, 1, true }, { 20, 67, false },
    };

    /// <summary>The vector widths this machine runs: 256-bit, and 512-bit with AVX-512.</summary>
    private static bool[] Widths() => Vector512.IsHardwareAccelerated ? [false, true] : [false];

    [Fact]
    public void The_kernel_tests_skip_exactly_when_the_kernels_are_unsupported() =>
        Assert.Equal(RowProduct.Supported, Platform.SimdKernels);

    [SimdKernelTheory]
    [MemberData(nameof(Shapes))]
    public unsafe void Kernels_equal_a_naive_double_product_at_both_widths(int n, int m, bool bias)
    {
        var (x, w, b) = Data(n, m, bias, seed: n * 1000 + m);
        foreach (bool inputMajor in new[] { true, false })
        foreach (bool wide in Widths())
        {
            var y = new float[m];
            fixed (float* px = x, pw = w, pb = b, py = y)
            {
                if (inputMajor) RowProduct.InputMajor(px, pw, bias ? pb : null, py, n, m, wide); // w read as (n, m)
                else RowProduct.OutputMajor(px, pw, bias ? pb : null, py, n, m, wide);          // w read as (m, n)
            }

            for (int j = 0; j < m; j++)
            {
                double expected = bias ? b[j] : 0, scale = 0;
                for (int i = 0; i < n; i++)
                {
                    double product = (double)x[i] * (inputMajor ? w[(long)i * m + j] : w[(long)j * n + i]);
                    expected += product;
                    scale += Math.Abs(product);
                }

                Assert.True(Math.Abs(y[j] - expected) <= 1e-6 * (scale + 1), $"inputMajor={inputMajor}, wide={wide}, output {j}: {y[j]} vs {expected}");
            }
        }
    }

    [SimdKernelFact]
    public void Autocast_products_of_one_row_in_inference_use_the_kernel_for_every_weight_layout()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(5);
        var x = torch.randn(1, 1, 40);             // (B=1, T=1, in): a decoding step's hidden state
        var inputMajor = torch.randn(40, 70);      // (in, out)
        var outputMajor = torch.randn(70, 40);     // (out, in)
        var bias = torch.randn(70);
        var expectedIn = Reference(x, inputMajor, bias);
        var expectedOut = Reference(x, outputMajor.t(), bias);

        using var inference = torch.inference_mode();
        var viaMatMul = RowProduct.MatMul(x, inputMajor, bias);
        var viaTransposedView = RowProduct.Linear(x, inputMajor.t(), bias); // InputMajorLinear's kept (out, in) view
        var viaLinear = RowProduct.Linear(x, outputMajor, bias);           // a tied LM head's embedding
        Assert.NotNull(viaMatMul);
        Assert.NotNull(viaTransposedView);
        Assert.NotNull(viaLinear);
        Assert.Equal(new long[] { 1, 1, 70 }, viaMatMul!.shape);
        AssertClose(expectedIn, viaMatMul);
        AssertClose(expectedIn, viaTransposedView!);
        AssertClose(expectedOut, viaLinear!);
        AssertClose(expectedIn, Autocast.MatMul(x.view(1, 40), inputMajor, bias).view(1, 1, 70)); // the callers' entry points
        AssertClose(expectedOut, Autocast.Linear(x, outputMajor, bias));
    }

    [SimdKernelFact]
    public void Anything_but_one_float32_row_without_autograd_is_left_to_libtorch()
    {
        using var scope = torch.NewDisposeScope();
        var w = torch.randn(8, 24, requires_grad: true); // (in, out)
        var row = torch.randn(1, 8);

        // autograd on: the product must be libtorch's, so gradients flow to the weight
        Assert.Null(RowProduct.MatMul(row, w, null));
        var y = Autocast.MatMul(row, w);
        y.sum().backward();
        Assert.NotNull(w.grad);

        using var noGrad = torch.no_grad();
        Assert.NotNull(RowProduct.MatMul(row, w, null));                                          // no_grad counts as inference
        Assert.Null(RowProduct.MatMul(torch.randn(2, 8), w, null));                               // two rows
        Assert.Null(RowProduct.MatMul(torch.randn(8, 2).t()[..1], w, null));                       // a strided row
        Assert.Null(RowProduct.MatMul(row.to(ScalarType.Float64), w.to(ScalarType.Float64), null)); // another type
        Assert.Null(RowProduct.MatMul(row, w.t().contiguous().t(), null));                        // a weight that is not dense (in, out)
        Assert.Null(RowProduct.MatMul(torch.randn(1, 7), w, null));                               // mismatched sizes: libtorch raises
        Assert.Throws<ExternalException>(() => Autocast.MatMul(torch.randn(1, 7), w));
        using (Autocast.Enable(ScalarType.BFloat16))
            Assert.Equal(ScalarType.BFloat16, Autocast.MatMul(row, w).dtype); // autocast decides the type, not the kernel
    }

    private static (float[] X, float[] W, float[] B) Data(int n, int m, bool bias, int seed)
    {
        var rng = new Random(seed);
        float Next() => (float)(rng.NextDouble() * 2 - 1);
        return (Enumerable.Range(0, n).Select(_ => Next()).ToArray(), Enumerable.Range(0, n * m).Select(_ => Next()).ToArray(),
            bias ? Enumerable.Range(0, m).Select(_ => Next()).ToArray() : new float[1]);
    }

    /// <summary>x (.., in) @ w (in, out) + b in float64, as a tensor of x's leading shape.</summary>
    private static Tensor Reference(Tensor x, Tensor w, Tensor b) =>
        (x.to(ScalarType.Float64).matmul(w.to(ScalarType.Float64)) + b.to(ScalarType.Float64)).to(ScalarType.Float32);

    private static void AssertClose(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.True(expected.allclose(actual, rtol: 1e-5, atol: 1e-5), $"max difference {(expected - actual).abs().max().item<float>()}");
    }
}
