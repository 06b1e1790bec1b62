using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Adapters;

/// <summary>
/// Settings of a <see cref="LoraAdapter"/>, named as PEFT's <c>LoraConfig</c> (<c>r</c>, <c>lora_alpha</c>,
/// <c>lora_dropout</c>, <c>target_modules</c>). A target's output becomes <c>y + (Alpha / Rank) · dropout(x) Aᵀ Bᵀ</c>.
/// </summary>
public sealed class LoraOptions : IValidatableOptions
{
    /// <summary>The largest <see cref="Rank"/> accepted.</summary>
    public const int MaxRank = 65536;

    /// <summary>The rank r of each update B A: A is (r, in), B is (out, r); [1, <see cref="MaxRank"/>]. PEFT's <c>r</c>.</summary>
    public int Rank { get; set; } = 8;

    /// <summary>The update's numerator: the scale is <see cref="Alpha"/> / <see cref="Rank"/>; finite and &gt; 0. PEFT's <c>lora_alpha</c>.</summary>
    public double Alpha { get; set; } = 8;

    /// <summary>Dropout on the adapter's input x (only while the target layer is in training mode); [0, 1). PEFT's <c>lora_dropout</c>.</summary>
    public double Dropout { get; set; }

    /// <summary>
    /// Module name patterns, PEFT-style: a pattern selects every module whose <c>named_modules()</c> name equals it or
    /// ends with <c>.</c> followed by it (so <c>qkv_proj</c> selects <c>layers.0.self_attn.qkv_proj</c>, and
    /// <c>layers.0.self_attn.qkv_proj</c> only that one; <c>proj</c> selects nothing there). No globs, no regular
    /// expressions. At least one pattern; none empty. PEFT's <c>target_modules</c> (as a list). Default: the attention
    /// projections of <c>MoeForCausalLM</c>, <c>qkv_proj</c> and <c>o_proj</c> (GPT-2's are <c>c_attn</c> and <c>c_proj</c>).
    /// </summary>
    public IList<string> TargetModules { get; set; } = ["qkv_proj", "o_proj"];

    /// <summary>The base model's name or path, recorded as PEFT's <c>base_model_name_or_path</c> when saving; optional.</summary>
    public string? BaseModelNameOrPath { get; set; }

    /// <summary>The update's scale, <see cref="Alpha"/> / <see cref="Rank"/>.</summary>
    public double Scale => Alpha / Rank;

    /// <summary>True when <paramref name="pattern"/> selects the module named <paramref name="moduleName"/> (see <see cref="TargetModules"/>).</summary>
    public static bool Matches(string pattern, string moduleName)
    {
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(moduleName);
        return pattern.Length > 0 && (moduleName == pattern ||
            (moduleName.Length > pattern.Length && moduleName.EndsWith(pattern, StringComparison.Ordinal) && moduleName[^(pattern.Length + 1)] == '.'));
    }

    /// <summary>A copy (the target list is copied too).</summary>
    public LoraOptions Clone() => new()
    {
        Rank = Rank, Alpha = Alpha, Dropout = Dropout, TargetModules = [.. TargetModules], BaseModelNameOrPath = BaseModelNameOrPath,
    };

    /// <summary>Every problem, naming the field, its value and the allowed range.</summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(Rank is >= 1 and <= MaxRank, nameof(Rank), Rank, $"[1, {MaxRank}]");
        errors.Require(double.IsFinite(Alpha) && Alpha > 0, nameof(Alpha), Alpha, "finite and > 0");
        errors.Require(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "[0, 1)");
        errors.Require(TargetModules is { Count: > 0 }, nameof(TargetModules), TargetModules is null ? null : "[]", "at least one module name pattern");
        if (TargetModules is not null)
        {
            foreach (string? pattern in TargetModules)
                errors.Require(!string.IsNullOrWhiteSpace(pattern) && pattern.Trim() == pattern, nameof(TargetModules), pattern is null ? null : $"'{pattern}'", "non-empty names without surrounding spaces");
        }

        return errors;
    }
}
