namespace YingHub.Moe.Core.Quantization;

/// <summary>
/// A layer whose float weight can be replaced by a <see cref="QuantizedWeight"/>: it then reads its weight by
/// dequantizing on every forward, and keeps its float fast paths (kept inference views, decoding kernels over them)
/// for the unquantized case only. Implemented by the attention projections, the stacked experts and dense FFN layers
/// (<c>StackedLinear</c>) and GPT-2's <c>Conv1D</c>.
/// </summary>
internal interface IQuantizableLayer
{
    /// <summary>The store, once quantized; null while the weight is a float Parameter.</summary>
    QuantizedWeight? Quantized { get; }

    /// <summary>Elements of the weight (float or quantized).</summary>
    long WeightElements { get; }

    /// <summary>Replaces the float weight by a quantized store and frees the Parameter.</summary>
    /// <exception cref="InvalidOperationException">Quantized already.</exception>
    void Quantize(QuantizationKind kind, int blockSize);
}
