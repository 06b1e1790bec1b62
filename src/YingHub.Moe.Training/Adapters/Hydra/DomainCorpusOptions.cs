using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Adapters.Hydra;

/// <summary>How <see cref="DomainCorpus.Build"/> samples and splits documents.</summary>
public sealed class DomainCorpusOptions : IValidatableOptions
{
    /// <summary>The share of each source's documents held out (rounded, at least one when the source has two or more); [0, 1).</summary>
    public double HeldOutFraction { get; set; } = 0.2;

    /// <summary>Seed of the sampling (<see cref="DomainSource.MaxDocuments"/>) and of the split; any value.</summary>
    public int Seed { get; set; }

    /// <summary>Drop a document whose text equals an earlier one's (a file reachable under two names, e.g. <c>GPL</c> and <c>GPL-3</c>), so no held-out document is also a training document.</summary>
    public bool DropDuplicates { get; set; } = true;

    /// <summary>Every problem, naming the field, its value and the allowed range.</summary>
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(HeldOutFraction is >= 0 and < 1, nameof(HeldOutFraction), HeldOutFraction, "[0, 1)");
        return errors;
    }
}
