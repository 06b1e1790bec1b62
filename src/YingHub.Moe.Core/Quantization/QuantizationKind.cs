namespace YingHub.Moe.Core.Quantization;

/// <summary>How a quantized base stores its linear weights (<see cref="QuantizationOptions.Kind"/>).</summary>
public enum QuantizationKind
{
    /// <summary>
    /// 4-bit NormalFloat (QLoRA, Dettmers et al. 2023, as bitsandbytes' <c>nf4</c>): each element is the index of the
    /// nearest of the 16 <see cref="BlockQuantization.Nf4Codes"/> after dividing its block by the block's absmax; two
    /// indices per byte. About 0.56 bytes per weight at block size 64 (an fp32 absmax per block).
    /// </summary>
    Nf4,

    /// <summary>Symmetric int8: <c>round(127 · w / absmax)</c> per block, one signed byte per element.</summary>
    Int8,
}
