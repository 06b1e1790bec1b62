using TorchSharp;
using static TorchSharp.torch;

namespace YingHub.Moe.Core.Quantization;

/// <summary>The errors the quantizable layers share.</summary>
internal static class QuantizedLayers
{
    /// <summary>Reading the float weight of a quantized layer.</summary>
    public static InvalidOperationException NoFloatWeight(nn.Module layer) =>
        new($"This {layer.GetType().Name} is quantized: its weight is stored as codes and absmax scales and has no float Parameter (dequantize it through the layer's forward).");

    /// <summary>Quantizing a layer twice.</summary>
    public static InvalidOperationException QuantizedAlready(nn.Module layer) =>
        new($"This {layer.GetType().Name} is quantized already.");
}
