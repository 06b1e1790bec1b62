using TorchSharp;
using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Training.Schedules;
using static TorchSharp.torch;

namespace YingHub.Moe.Training.Data;

/// <summary>
/// Dynamic token masking (YingHub-v2): replaces each <b>input</b> token with a mask token independently with probability
/// <c>p</c>, where <c>p</c> decays linearly over training. Targets are never passed in, so they cannot be touched: the
/// model still predicts the real next token, from a corrupted context.
/// </summary>
public sealed class DynamicTokenMasker
{
    /// <summary>Creates a masker from validated options (the values are copied).</summary>
    /// <param name="options">The options.</param>
    /// <exception cref="ArgumentException">The options are invalid.</exception>
    public DynamicTokenMasker(TokenMaskingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid();
        MaskTokenId = options.MaskTokenId;
        Probability = new PiecewiseLinearSchedule([(0.0, options.StartProbability), (1.0, options.EndProbability)]);
    }

    /// <summary>The id written over masked tokens.</summary>
    public long MaskTokenId { get; }

    /// <summary>The masking probability over training progress.</summary>
    public PiecewiseLinearSchedule Probability { get; }

    /// <summary>The masking probability at <paramref name="step"/> of <paramref name="totalSteps"/>.</summary>
    /// <param name="step">The 0-based step; &gt;= 0.</param>
    /// <param name="totalSteps">The run length; &gt; 0.</param>
    public double ProbabilityAt(long step, long totalSteps) => Probability.AtStep(step, totalSteps);

    /// <summary>Masks <paramref name="inputIds"/> with the probability of <paramref name="step"/> of <paramref name="totalSteps"/>.</summary>
    /// <param name="inputIds">Input ids (B, T), int64; not modified.</param>
    /// <param name="step">The 0-based step; &gt;= 0.</param>
    /// <param name="totalSteps">The run length; &gt; 0.</param>
    /// <param name="generator">The random generator (seeded by the trainer for exact resume); null uses the default one.</param>
    /// <returns>A new (B, T) int64 tensor, owned by the caller (registered in the caller's dispose scope, if any).</returns>
    public Tensor Mask(Tensor inputIds, long step, long totalSteps, Generator? generator) =>
        Apply(inputIds, MaskTokenId, ProbabilityAt(step, totalSteps), generator);

    /// <summary>
    /// Replaces each element of <paramref name="inputIds"/> with <paramref name="maskTokenId"/> independently with
    /// probability <paramref name="probability"/>, in three tensor ops (uniform draw, compare, masked fill). The draw
    /// happens for every call, including <c>p = 0</c>, so the generator advances the same way whatever <c>p</c> is.
    /// </summary>
    /// <param name="inputIds">Input ids (B, T) (any shape works), int64; not modified.</param>
    /// <param name="maskTokenId">The id written over masked tokens; &gt;= 0.</param>
    /// <param name="probability">The masking probability; in [0, 1].</param>
    /// <param name="generator">The random generator; null uses the default one.</param>
    /// <returns>A new int64 tensor of the same shape, owned by the caller.</returns>
    /// <exception cref="ArgumentException">The dtype is not int64, or the id or probability is out of range.</exception>
    public static Tensor Apply(Tensor inputIds, long maskTokenId, double probability, Generator? generator)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (inputIds.dtype != ScalarType.Int64)
            throw new ArgumentException($"inputIds.dtype = {inputIds.dtype} is invalid; allowed: Int64.", nameof(inputIds));
        if (maskTokenId < 0)
            throw new ArgumentException($"maskTokenId = {maskTokenId} is invalid; allowed: >= 0.", nameof(maskTokenId));
        if (probability is not (>= 0 and <= 1))
            throw new ArgumentException($"probability = {probability} is invalid; allowed: [0, 1].", nameof(probability));

        using var scope = NewDisposeScope();
        using Scalar threshold = probability.ToScalar();
        using Scalar maskId = maskTokenId.ToScalar();
        Tensor uniform = rand(inputIds.shape, ScalarType.Float32, inputIds.device, generator: generator); // (B, T) in [0, 1)
        Tensor mask = uniform.lt(threshold);                                                               // (B, T) bool
        return inputIds.masked_fill(mask, maskId).MoveToOuterDisposeScope();                              // (B, T) int64
    }
}
