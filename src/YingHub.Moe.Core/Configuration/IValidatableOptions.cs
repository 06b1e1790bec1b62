namespace YingHub.Moe.Core.Configuration;

/// <summary>An options type that can list its own validation failures (a pure check, no side effects).</summary>
public interface IValidatableOptions
{
    /// <summary>Every failed check; empty when the options are valid.</summary>
    IReadOnlyList<OptionError> GetValidationErrors();
}
