using System.Buffers;
using TorchSharp;
using YingHub.Moe.Core.Configuration;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Kernels;

/// <summary>One expert's share of a batched decoding step: its layers, the tokens (rows of x) routed to it and their gates.</summary>
/// <param name="Layers">The expert's layers in order (input-major weights).</param>
/// <param name="Tokens">Rows of x routed to the expert, each at most once.</param>
/// <param name="Gates">The gate of each of those tokens for this expert.</param>
internal readonly record struct ExpertAssignment(ExpertLayer[] Layers, int[] Tokens, float[] Gates);

/// <summary>
/// A batched decoding step's tokens through their chosen experts on the CPU, in managed code:
/// <c>y_t = Σ_j gate_tj · expert_j(x_t)</c>. Per expert, its tokens are gathered into a scratch matrix, its layers run
/// in <see cref="FewRows"/>' kernels (each weight read once for all its tokens) with the activation in place, and each
/// output row is added, scaled by its gate, to its token's row. Nothing is sorted, scattered or allocated as a tensor
/// between the steps; libtorch's path (<see cref="Modules.TokenDispatch"/>) takes about eight tensor operations per
/// expert plus the plan's sort and scatter. It computes what <see cref="Modules.ExpertBank"/> computes, up to rounding.
/// </summary>
internal static unsafe class ExpertRows
{
    /// <summary>
    /// Whether the managed path runs: <see cref="FewRows.Runs"/> for x (N, C), and every assigned expert's layers
    /// fitting as <see cref="ExpertRow.LayersFit"/> says.
    /// </summary>
    public static bool Applies(Tensor x, IReadOnlyList<ExpertAssignment> assignments, ExpertActivation activation) =>
        FewRows.Runs(x) && x.dim() == 2 && ExpertRow.LayersFit(x.size(1), assignments.Select(a => a.Layers), activation);

    /// <summary>
    /// <c>y_t = Σ gate · expert(x_t)</c> over the assignments, as a new (N, C) tensor (rows no expert takes are zero);
    /// check <see cref="Applies"/> first. x (N, C).
    /// </summary>
    public static Tensor Combine(Tensor x, IReadOnlyList<ExpertAssignment> assignments, ExpertActivation activation)
    {
        int n = (int)x.size(0), c = (int)x.size(1), widest = c, most = 0;
        foreach (var a in assignments)
        {
            most = Math.Max(most, a.Tokens.Length);
            foreach (var layer in a.Layers) widest = Math.Max(widest, (int)layer.Weight.size(1));
        }

        var y = torch.zeros([n, c], ScalarType.Float32);
        int block = most * widest; // one (tokens, width) matrix
        float[] scratch = ArrayPool<float>.Shared.Rent(3 * block);
        try
        {
            fixed (float* buffers = scratch)
            {
                float* input = RowProduct.Data(x), output = RowProduct.Data(y), gathered = buffers + 2 * block;
                foreach (var a in assignments) Expert(a, input, output, gathered, buffers, block, c, activation);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
        }

        return y;
    }

    /// <summary>One expert on its tokens: gather their rows, run the layers ping-ponging between two scratch matrices, add the gated rows to y.</summary>
    private static void Expert(ExpertAssignment a, float* input, float* output, float* gathered, float* buffers, int block, int c, ExpertActivation activation)
    {
        int rows = a.Tokens.Length;
        for (int i = 0; i < rows; i++)
            new ReadOnlySpan<float>(input + (long)a.Tokens[i] * c, c).CopyTo(new Span<float>(gathered + (long)i * c, c)); // (rows, C)
        float* h = gathered;
        for (int l = 0; l < a.Layers.Length; l++)
        {
            var (w, b) = a.Layers[l];
            int inFeatures = (int)w.size(0), m = (int)w.size(1);
            float* next = buffers + (l % 2) * block;                                           // (rows, m)
            FewRows.InputMajor(h, RowProduct.Data(w), b is null ? null : RowProduct.Data(b), next, rows, inFeatures, m, RowProduct.Wide);
            if (l < a.Layers.Length - 1) Activate(next, rows, m, activation);               // (rows, m), or (rows, m/2) packed for SwiGLU
            h = next;
        }

        for (int i = 0; i < rows; i++) RowProduct.AddScaled(output + (long)a.Tokens[i] * c, a.Gates[i], h + (long)i * c, c);
    }

    /// <summary>
    /// The activation on h (rows, m) in place. SwiGLU leaves each row's m/2 outputs in its first half; the rows are then
    /// packed to (rows, m/2), the next layer's input (row r moves to r·m/2, which for r ≥ 1 ends before r·m: no overlap).
    /// </summary>
    private static void Activate(float* h, int rows, int m, ExpertActivation activation)
    {
        if (activation != ExpertActivation.SwiGlu)
        {
            ExpertRow.Activate(h, rows * m, activation); // elementwise: one pass over the whole matrix
            return;
        }

        int half = m / 2;
        for (int r = 0; r < rows; r++)
        {
            ExpertRow.Activate(h + (long)r * m, m, activation);
            if (r > 0) new ReadOnlySpan<float>(h + (long)r * m, half).CopyTo(new Span<float>(h + (long)r * half, half));
        }
    }
}
