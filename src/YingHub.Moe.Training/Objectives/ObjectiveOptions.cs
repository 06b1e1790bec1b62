using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Objectives;

/// <summary>One objective of an <see cref="ObjectiveMixtureOptions">objective mixture</see> (a UL2 denoiser, or causal LM).</summary>
public sealed class ObjectiveOptions : IValidatableOptions
{
    /// <summary>The name the mixture's stages weigh it by; non-empty. Default: <c>causal</c> (with the default <see cref="Kind"/>).</summary>
    public string Name { get; set; } = ObjectiveMixtureOptions.CausalName;

    /// <summary>What it makes of a block of text.</summary>
    public ObjectiveKind Kind { get; set; }

    /// <summary>Span corruption: mean length of a corrupted span (μ), in tokens; in [1, 1,000,000].</summary>
    public double MeanSpanLength { get; set; } = 3;

    /// <summary>Span corruption: share of the source tokens corrupted (r); in (0, 1).</summary>
    public double CorruptionRate { get; set; } = 0.15;

    /// <summary>
    /// A mode token written first in every sequence of this objective (UL2's paradigm tokens, e.g. <c>[R]</c>,
    /// <c>[X]</c>, <c>[S]</c>), added to the tokenizer as a special token; null: none (the usual choice for causal LM).
    /// </summary>
    public string? ModeToken { get; set; }

    /// <summary>
    /// Prefix LM and span corruption: the context part (the prefix; the corrupted input with its sentinels) attends to
    /// itself in both directions, UL2's non-causal decoder; false: causal attention throughout.
    /// </summary>
    public bool BidirectionalPrefix { get; set; } = true;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(!string.IsNullOrWhiteSpace(Name), nameof(Name), Name, "a non-empty name");
        errors.Require(Enum.IsDefined(Kind), nameof(Kind), Kind, string.Join(", ", Enum.GetNames<ObjectiveKind>()));
        errors.Require(ModeToken is null || ModeToken.Length > 0, nameof(ModeToken), ModeToken, "null or a non-empty string");
        if (Kind == ObjectiveKind.SpanCorruption)
        {
            errors.Require(MeanSpanLength is >= 1 and <= 1_000_000, nameof(MeanSpanLength), MeanSpanLength, "[1, 1000000]");
            errors.Require(CorruptionRate is > 0 and < 1, nameof(CorruptionRate), CorruptionRate, "(0, 1)");
        }

        return errors;
    }

    /// <summary>A copy.</summary>
    public ObjectiveOptions Clone() => (ObjectiveOptions)MemberwiseClone();
}
