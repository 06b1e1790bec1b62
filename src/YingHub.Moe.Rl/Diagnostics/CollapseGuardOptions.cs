using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Rl.Diagnostics;

/// <summary>
/// Thresholds of <see cref="CollapseGuard"/>; a null threshold is not checked. The defaults only flag a batch that
/// is mostly one response or one loop; tighten them per run.
/// <para>
/// The distinct-n thresholds depend on the unit the metrics were counted in. Over characters (a char tokenizer)
/// distinct-2 is low by nature: a 65-character vocabulary has at most 4,225 bigrams and English uses a few hundred,
/// so a healthy batch of a few hundred characters already repeats most of its bigrams. Over words or BPE tokens a
/// healthy batch scores far higher. Measure a healthy run first and set the minima below what it shows.
/// </para>
/// </summary>
public sealed class CollapseGuardOptions : IValidatableOptions
{
    /// <summary>Flag when <see cref="CollapseMetrics.IdenticalShare"/> exceeds this; [0, 1] or null. Default 0.5: more than half the batch duplicates.</summary>
    public double? MaxIdenticalShare { get; set; } = 0.5;

    /// <summary>Flag when <see cref="CollapseMetrics.Distinct2"/> falls below this; [0, 1] or null (default: unchecked, as it depends on the tokenization).</summary>
    public double? MinDistinct2 { get; set; }

    /// <summary>Flag when <see cref="CollapseMetrics.Distinct3"/> falls below this; [0, 1] or null (default: unchecked, as it depends on the tokenization).</summary>
    public double? MinDistinct3 { get; set; }

    /// <summary>Flag when <see cref="CollapseMetrics.RepeatedNgramRate"/> exceeds this; [0, 1] or null. Default 0.5: most of a response loops.</summary>
    public double? MaxRepeatedNgramRate { get; set; } = 0.5;

    /// <summary>Whether a collapse sets <see cref="CollapseVerdict.ShouldStop"/> (true, default) or is only reported.</summary>
    public bool StopOnCollapse { get; set; } = true;

    /// <summary>Consecutive flagged checks before the verdict is <see cref="CollapseStatus.Collapsed"/>; [1, 1,000,000]. Default 3: one odd batch is noise.</summary>
    public int Patience { get; set; } = 3;

    /// <summary>The largest <see cref="Patience"/>.</summary>
    public const int MaxPatience = 1_000_000;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        Share(errors, nameof(MaxIdenticalShare), MaxIdenticalShare);
        Share(errors, nameof(MinDistinct2), MinDistinct2);
        Share(errors, nameof(MinDistinct3), MinDistinct3);
        Share(errors, nameof(MaxRepeatedNgramRate), MaxRepeatedNgramRate);
        errors.Require(Patience is >= 1 and <= MaxPatience, nameof(Patience), Patience, $"[1, {MaxPatience}]");
        return errors;
    }

    private static void Share(List<OptionError> errors, string name, double? value) =>
        errors.Require(value is not { } v || v is >= 0 and <= 1, name, value, "[0, 1], or null to skip the check");
}
