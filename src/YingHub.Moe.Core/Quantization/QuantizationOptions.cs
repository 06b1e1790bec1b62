using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Core.Quantization;

/// <summary>
/// Settings of <see cref="ModelQuantization.Quantize"/>: the storage format, the block size of the absmax scales and
/// which layers to quantize.
/// </summary>
public sealed class QuantizationOptions : IValidatableOptions
{
    /// <summary>The largest <see cref="BlockSize"/> accepted.</summary>
    public const int MaxBlockSize = 1 << 20;

    /// <summary>The storage format; default <see cref="QuantizationKind.Nf4"/>.</summary>
    public QuantizationKind Kind { get; set; } = QuantizationKind.Nf4;

    /// <summary>
    /// Consecutive elements of the flattened weight that share one absmax scale; even, [2, <see cref="MaxBlockSize"/>].
    /// Default 64, QLoRA's and bitsandbytes' block size for NF4.
    /// </summary>
    public int BlockSize { get; set; } = 64;

    /// <summary>
    /// Module name patterns (a pattern selects a module whose <c>named_modules()</c> name equals it or ends with
    /// <c>.</c> followed by it, as LoRA's target patterns), or null for every layer that can be quantized: the attention
    /// projections (<c>qkv_proj</c>, <c>o_proj</c>), the stacked experts and dense FFN layers (<c>fc1</c>, <c>fc2</c>,
    /// <c>fc3</c>) and GPT-2's <c>Conv1D</c> layers. Embeddings, norms, the router and the LM head always stay float.
    /// </summary>
    public IList<string>? TargetModules { get; set; }

    /// <summary>True when <paramref name="pattern"/> selects the module named <paramref name="moduleName"/> (see <see cref="TargetModules"/>).</summary>
    public static bool Matches(string pattern, string moduleName)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(moduleName);
        return pattern.Length > 0 && (moduleName == pattern ||
            (moduleName.Length > pattern.Length && moduleName.EndsWith(pattern, StringComparison.Ordinal) && moduleName[^(pattern.Length + 1)] == '.'));
    }

    /// <summary>A copy (the pattern list is copied too).</summary>
    public QuantizationOptions Clone() => new() { Kind = Kind, BlockSize = BlockSize, TargetModules = TargetModules is null ? null : [.. TargetModules] };

    /// <summary>Every problem, naming the field, its value and the allowed range.</summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Enum.IsDefined(Kind), nameof(Kind), Kind, "Nf4 or Int8");
        errors.Require(BlockSize is >= 2 and <= MaxBlockSize && BlockSize % 2 == 0, nameof(BlockSize), BlockSize, $"even, [2, {MaxBlockSize}]");
        errors.Require(TargetModules is null or { Count: > 0 }, nameof(TargetModules), "[]", "null (every quantizable layer) or at least one module name pattern");
        foreach (string? pattern in TargetModules ?? [])
            errors.Require(!string.IsNullOrWhiteSpace(pattern) && pattern.Trim() == pattern, nameof(TargetModules), pattern is null ? null : $"'{pattern}'", "non-empty names without surrounding spaces");
        return errors;
    }
}
