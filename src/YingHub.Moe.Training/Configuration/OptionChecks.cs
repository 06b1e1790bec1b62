namespace YingHub.Moe.Training.Configuration;

/// <summary>Collects <see cref="OptionError"/>s for an options type and throws them as one exception.</summary>
public static class OptionChecks
{
    /// <summary>
    /// Throws an <see cref="ArgumentException"/> whose <see cref="ArgumentException.ParamName"/> is the first failing
    /// field and whose message lists every failure (field, value, allowed range). Does nothing when valid.
    /// </summary>
    /// <param name="options">The options to check.</param>
    /// <exception cref="ArgumentException">At least one check failed.</exception>
    public static void ThrowIfInvalid(this IValidatableOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<OptionError> errors = options.GetValidationErrors();
        if (errors.Count == 0) return;
        string message = $"Invalid {options.GetType().Name}: " + string.Join(" ", errors.Select(e => e.Message));
        throw new ArgumentException(message, errors[0].Field);
    }

    /// <summary>Adds an error to <paramref name="errors"/> unless <paramref name="ok"/> holds.</summary>
    /// <param name="errors">The list to append to.</param>
    /// <param name="ok">The check's outcome.</param>
    /// <param name="field">The option's property name.</param>
    /// <param name="value">The checked value.</param>
    /// <param name="allowed">The allowed range, in words.</param>
    public static void Require(this List<OptionError> errors, bool ok, string field, object? value, string allowed)
    {
        ArgumentNullException.ThrowIfNull(errors);
        if (!ok) errors.Add(new OptionError(field, value, allowed));
    }

    /// <summary>True when <paramref name="value"/> is a finite number (neither NaN nor infinite).</summary>
    /// <param name="value">The value to test.</param>
    public static bool IsFinite(double value) => double.IsFinite(value);
}
