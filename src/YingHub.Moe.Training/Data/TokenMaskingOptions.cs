using YingHub.Moe.Core.Configuration;
using YingHub.Moe.Training.Schedules;

namespace YingHub.Moe.Training.Data;

/// <summary>
/// Options of <see cref="DynamicTokenMasker"/>: the mask token and a masking probability that decays linearly from
/// <see cref="StartProbability"/> to <see cref="EndProbability"/> over training (YingHub-v2: 0.20 → 0.05).
/// </summary>
public sealed class TokenMaskingOptions : IValidatableOptions
{
    /// <summary>The id written over masked input tokens; &gt;= 0 (and below the vocabulary size, which the model checks).</summary>
    public long MaskTokenId { get; set; }

    /// <summary>Masking probability at progress 0; in [0, 1].</summary>
    public double StartProbability { get; set; } = YingHubV2Schedules.MaskProbabilityStart;

    /// <summary>Masking probability at progress 1 and after; in [0, 1].</summary>
    public double EndProbability { get; set; } = YingHubV2Schedules.MaskProbabilityEnd;

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(MaskTokenId >= 0, nameof(MaskTokenId), MaskTokenId, ">= 0");
        errors.Require(StartProbability is >= 0 and <= 1, nameof(StartProbability), StartProbability, "[0, 1]");
        errors.Require(EndProbability is >= 0 and <= 1, nameof(EndProbability), EndProbability, "[0, 1]");
        return errors;
    }
}
