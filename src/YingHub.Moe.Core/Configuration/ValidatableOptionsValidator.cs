using Microsoft.Extensions.Options;

namespace YingHub.Moe.Core.Configuration;

/// <summary>
/// Adapts any <see cref="IValidatableOptions"/> to <see cref="IValidateOptions{TOptions}"/>, so hosts can register it
/// with <c>ValidateOnStart()</c>.
/// </summary>
/// <typeparam name="TOptions">The options type.</typeparam>
public sealed class ValidatableOptionsValidator<TOptions> : IValidateOptions<TOptions>
    where TOptions : class, IValidatableOptions
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, TOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<OptionError> errors = options.GetValidationErrors();
        return errors.Count == 0
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail(errors.Select(e => e.Message));
    }
}
