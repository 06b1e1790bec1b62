using System.Collections.Concurrent;
using System.Diagnostics;
using TorchSharp;
using YingHub.Moe.Core.Modules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Diagnostics;

/// <summary>
/// Model FLOPs utilisation (MFU, PaLM appendix B; nanoGPT's <c>estimate_mfu</c>): the FLOPs a training step must do
/// divided by the step time, over the machine's measured matrix-multiply peak.
/// </summary>
public static class ModelFlops
{
    private static readonly ConcurrentDictionary<(ScalarType, string), double> Peaks = new();

    /// <summary>The side of the square matrices of <see cref="MeasureMatmulPeak"/>.</summary>
    public const int PeakMatrixSize = 1024;

    /// <summary>
    /// Training FLOPs per token: 6 × the parameters a token uses (forward 2, backward 4; for an MoE layer only k experts,
    /// see <see cref="MoeForCausalLM.ActiveParameterCount"/>) plus attention's scores and weighted sum, 12 × layers ×
    /// hidden × context, counted over the full T × T square as nanoGPT does.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="blockSize">Tokens per training sequence, &gt;= 1.</param>
    public static double TrainingFlopsPerToken(MoeForCausalLM model, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (blockSize < 1) throw new ArgumentException($"blockSize = {blockSize} is invalid; allowed: >= 1.", nameof(blockSize));
        var o = model.Options;
        return 6.0 * model.ActiveParameterCount + 12.0 * o.NumLayers * o.HiddenSize * blockSize;
    }

    /// <summary>
    /// The matrix-multiply throughput of this machine in FLOP/s: the best of several
    /// <see cref="PeakMatrixSize"/>² products in <paramref name="dtype"/>, measured once per process and cached.
    /// </summary>
    public static double MeasureMatmulPeak(ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        device ??= CPU;
        return Peaks.GetOrAdd((dtype, device.ToString()), key =>
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var a = randn(PeakMatrixSize, PeakMatrixSize, device: device).to(dtype);
            var b = randn(PeakMatrixSize, PeakMatrixSize, device: device).to(dtype);
            for (int i = 0; i < 3; i++) a.mm(b).Dispose(); // warm-up (thread pool, caches)
            double best = double.MaxValue;
            var total = Stopwatch.StartNew();
            for (int round = 0; round < 5 || (total.Elapsed < TimeSpan.FromMilliseconds(300) && round < 50); round++)
            {
                var clock = Stopwatch.StartNew();
                using var c = a.mm(b);
                if (device.type != DeviceType.CPU) _ = c.sum().item<float>(); // wait for the device
                best = Math.Min(best, clock.Elapsed.TotalSeconds);
            }

            return 2.0 * PeakMatrixSize * PeakMatrixSize * PeakMatrixSize / best;
        });
    }
}
