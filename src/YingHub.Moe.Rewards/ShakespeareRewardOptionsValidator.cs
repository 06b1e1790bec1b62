using Microsoft.Extensions.Options;

namespace YingHub.Moe.Rewards;

/// <summary>
/// Validates <see cref="ShakespeareRewardOptions"/> for the options pipeline
/// (<c>services.AddSingleton&lt;IValidateOptions&lt;ShakespeareRewardOptions&gt;, ShakespeareRewardOptionsValidator&gt;()</c>
/// with <c>ValidateOnStart()</c>); each failure names the property, its value and the allowed range.
/// </summary>
public sealed class ShakespeareRewardOptionsValidator : IValidateOptions<ShakespeareRewardOptions>
{
    /// <inheritdoc />
    public ValidateOptionsResult Validate(string? name, ShakespeareRewardOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<string> errors = options.Validate();
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
