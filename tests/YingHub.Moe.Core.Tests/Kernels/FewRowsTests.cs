using System.Runtime.Intrinsics;
using TorchSharp;
using YingHub.Moe.Core.Kernels;
using YingHub.Moe.Core.Precision;
using YingHub.Moe.Testing;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Tests.Kernels;

public class FewRowsTests
{
    // rows: 4-row groups and leftover rows; columns: 64-column blocks, 8-column blocks and single columns; inputs with vector tails
    public static TheoryData<int, int, int, bool> Shapes() => new()
    {
        { 2, 192, 768, true }, { 5, 33, 130, true }, { 4, 16, 72, false }, { 7, 20, 67, false }, { 3, 7, 5, true }, { 9, 64, 128, false }, { 64, 10, 66, true },
        { 6, 192, 1000, true }, // enough work to split the column blocks between threads (with more than one torch thread)
    };

    private static bool[] Widths() => Vector512.IsHardwareAccelerated ? [false, true] : [false];

    [SimdKernelTheory]
    [MemberData(nameof(Shapes))]
    public unsafe void Kernels_equal_a_naive_double_product_at_both_widths(int rows, int n, int m, bool bias)
    {
        var rng = new Random(rows * 100_000 + n * 1000 + m);
        float Next() => (float)(rng.NextDouble() * 2 - 1);
        float[] x = Enumerable.Range(0, rows * n).Select(_ => Next()).ToArray(), w = Enumerable.Range(0, n * m).Select(_ => Next()).ToArray();
        float[] b = bias ? Enumerable.Range(0, m).Select(_ => Next()).ToArray() : new float[1];
        foreach (bool inputMajor in new[] { true, false })
        foreach (bool wide in Widths())
        {
            var y = new float[rows * m];
            fixed (float* px = x, pw = w, pb = b, py = y)
            {
                if (inputMajor) FewRows.InputMajor(px, pw, bias ? pb : null, py, rows, n, m, wide); // w read as (n, m)
                else FewRows.OutputMajor(px, pw, bias ? pb : null, py, rows, n, m, wide);          // w read as (m, n)
            }

            for (int r = 0; r < rows; r++)
            for (int j = 0; j < m; j++)
            {
                double expected = bias ? b[j] : 0, scale = 0;
                for (int i = 0; i < n; i++)
                {
                    double product = (double)x[r * n + i] * (inputMajor ? w[i * m + j] : w[j * n + i]);
                    expected += product;
                    scale += Math.Abs(product);
                }

                Assert.True(Math.Abs(y[r * m + j] - expected) <= 1e-6 * (scale + 1), $"inputMajor={inputMajor}, wide={wide}, row {r}, output {j}: {y[r * m + j]} vs {expected}");
            }
        }
    }

    [SimdKernelFact]
    public void Autocast_products_of_a_few_rows_in_inference_use_the_kernels_for_every_weight_layout()
    {
        using var scope = torch.NewDisposeScope();
        torch.manual_seed(6);
        var x = torch.randn(3, 1, 40);         // (B=3, T=1, in): a batched decoding step
        var inputMajor = torch.randn(40, 70);  // (in, out)
        var outputMajor = torch.randn(70, 40); // (out, in)
        var bias = torch.randn(70);
        var expectedIn = (x.to(ScalarType.Float64).matmul(inputMajor.to(ScalarType.Float64)) + bias.to(ScalarType.Float64)).to(ScalarType.Float32);
        var expectedOut = (x.to(ScalarType.Float64).matmul(outputMajor.t().to(ScalarType.Float64)) + bias.to(ScalarType.Float64)).to(ScalarType.Float32);

        using var inference = torch.inference_mode();
        var viaMatMul = FewRows.MatMul(x, inputMajor, bias);
        var viaTransposedView = FewRows.Linear(x, inputMajor.t(), bias);
        var viaLinear = FewRows.Linear(x, outputMajor, bias);
        Assert.NotNull(viaMatMul);
        Assert.NotNull(viaTransposedView);
        Assert.NotNull(viaLinear);
        Assert.Equal(new long[] { 3, 1, 70 }, viaMatMul!.shape);
        AssertClose(expectedIn, viaMatMul);
        AssertClose(expectedIn, viaTransposedView!);
        AssertClose(expectedOut, viaLinear!);
        AssertClose(expectedIn, Autocast.MatMul(x.view(3, 40), inputMajor, bias).view(3, 1, 70));
        AssertClose(expectedOut, Autocast.Linear(x, outputMajor, bias));
    }

    [SimdKernelFact]
    public void One_row_too_many_rows_autograd_or_another_type_are_left_to_others()
    {
        using var scope = torch.NewDisposeScope();
        var w = torch.randn(8, 24, requires_grad: true); // (in, out)
        var rows = torch.randn(3, 8);
        Assert.Null(FewRows.MatMul(rows, w, null)); // autograd on: libtorch's product, so gradients flow

        using var noGrad = torch.no_grad();
        Assert.NotNull(FewRows.MatMul(rows, w, null));
        Assert.NotNull(FewRows.MatMul(torch.randn(FewRows.MaxRows, 8), w, null));
        Assert.Null(FewRows.MatMul(torch.randn(1, 8), w, null));                    // one row: RowProduct's
        Assert.Null(FewRows.MatMul(torch.randn(FewRows.MaxRows + 1, 8), w, null));  // enough rows for libtorch's GEMM
        Assert.Null(FewRows.MatMul(torch.randn(8, 3).t(), w, null));                // strided rows
        Assert.Null(FewRows.MatMul(rows.to(ScalarType.Float64), w.to(ScalarType.Float64), null));
        Assert.Null(FewRows.MatMul(torch.randn(3, 7), w, null));                    // mismatched sizes: libtorch raises
    }

    private static void AssertClose(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.shape, actual.shape);
        Assert.True(expected.allclose(actual, rtol: 1e-5, atol: 1e-5), $"max difference {(expected - actual).abs().max().item<float>()}");
    }
}
