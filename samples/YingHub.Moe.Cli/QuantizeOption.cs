using System.CommandLine;
using YingHub.Moe.Core.Modules;
using YingHub.Moe.Core.Quantization;

namespace YingHub.Moe.Cli;

/// <summary>
/// <c>--quantize nf4|int8</c> of <c>eval</c> and <c>generate</c>: the loaded model's linear layers (attention
/// projections, experts, dense FFNs) are stored blockwise quantized (block 64) and dequantized on the fly
/// (<see cref="ModelQuantization"/>), so a user can measure what quantization costs in loss and saves in memory.
/// </summary>
internal static class QuantizeOption
{
    public static Option<string?> Create() => new("--quantize")
    {
        Description = "Store the model's linear weights (attention projections, experts, dense FFNs) quantized, block 64, dequantized on the fly: nf4 (QLoRA's 4-bit NormalFloat) or int8. Embeddings, norms, router and LM head stay float.",
    };

    /// <summary>The format <paramref name="value"/> names (null: none); check it before loading the model.</summary>
    public static QuantizationKind? Parse(string? value) => value?.ToLowerInvariant() switch
    {
        null => null,
        "nf4" => QuantizationKind.Nf4,
        "int8" => QuantizationKind.Int8,
        _ => throw new CliException($"--quantize '{value}' is not a format; use nf4 or int8.", 2),
    };

    /// <summary>Quantizes <paramref name="model"/> to <paramref name="kind"/> (null: nothing) and returns the report.</summary>
    public static QuantizationReport? Apply(MoeForCausalLM model, QuantizationKind? kind) =>
        kind is { } k ? ModelQuantization.Quantize(model, new QuantizationOptions { Kind = k }) : null;

    /// <summary>The report in one line, e.g. for standard error.</summary>
    public static string Describe(QuantizationReport report) =>
        $"quantized {report.Kind} (block {report.BlockSize}): {string.Join(", ", report.Groups.Select(g => $"{g.Kind} {Mib(g.BytesBefore)} -> {Mib(g.BytesAfter)}"))}; " +
        $"model {Mib(report.ModelBytesBefore)} -> {Mib(report.ModelBytesAfter)}";

    private static string Mib(long bytes) => $"{bytes / 1048576.0:F2} MiB";
}
