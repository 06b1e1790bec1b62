namespace YingHub.Moe.Core.Quantization;

/// <summary>One kind of quantized layer in a <see cref="QuantizationReport"/>: how many, their weight elements, and their weight bytes as floats and as stored now.</summary>
/// <param name="Kind">The layers' kind: <c>attention</c> (<c>qkv_proj</c>, <c>o_proj</c>), <c>experts</c> (stacked expert banks), <c>dense FFN</c> (dense layers' and shared experts' FFN) or <c>GPT-2 Conv1D</c>.</param>
/// <param name="Layers">Quantized layers of this kind.</param>
/// <param name="Elements">Weight elements over those layers.</param>
/// <param name="BytesBefore">Bytes of their float weights.</param>
/// <param name="BytesAfter">Bytes of their codes and absmax scales.</param>
public sealed record QuantizedLayerGroup(string Kind, int Layers, long Elements, long BytesBefore, long BytesAfter);

/// <summary>What <see cref="ModelQuantization.Quantize"/> did.</summary>
/// <param name="Kind">The storage format.</param>
/// <param name="BlockSize">Elements per absmax scale.</param>
/// <param name="Groups">The quantized layers by kind, in the model's order of first appearance.</param>
/// <param name="ModelBytesBefore">Bytes of every parameter and buffer of the model before quantizing.</param>
/// <param name="ModelBytesAfter">The same after (the float weights freed; embeddings, norms, router, LM head and biases still float).</param>
public sealed record QuantizationReport(QuantizationKind Kind, int BlockSize, IReadOnlyList<QuantizedLayerGroup> Groups, long ModelBytesBefore, long ModelBytesAfter)
{
    /// <summary>Bytes of the quantized layers' weights as floats.</summary>
    public long WeightBytesBefore => Groups.Sum(g => g.BytesBefore);

    /// <summary>Bytes of the quantized layers' codes and scales.</summary>
    public long WeightBytesAfter => Groups.Sum(g => g.BytesAfter);

    /// <summary>One line per group and a total, e.g. for a console.</summary>
    public override string ToString() =>
        string.Join(Environment.NewLine, Groups.Select(g => $"{g.Kind}: {g.Layers} layers, {g.Elements:N0} weights, {Mb(g.BytesBefore)} -> {Mb(g.BytesAfter)}")
            .Append($"model ({Kind}, block {BlockSize}): {Mb(ModelBytesBefore)} -> {Mb(ModelBytesAfter)}"));

    private static string Mb(long bytes) => $"{bytes / 1048576.0:F2} MiB";
}
