namespace YingHub.Moe.Core.Configuration;

/// <summary>Collects <see cref="OptionError"/>s for an options type and throws them as one exception.</summary>
public static class OptionChecks
{
    /// <summary>
    /// Throws an <see cref="ArgumentException"/> whose message lists every failure (field, value, allowed range) and
    /// whose <see cref="ArgumentException.ParamName"/> is <paramref name="paramName"/>, or the first failing field when
    /// that is null. Does nothing when valid.
    /// </summary>
    /// <param name="options">The options to check.</param>
    /// <param name="paramName">The caller's parameter to name (e.g. <c>nameof(options)</c>); null names the first failing field.</param>
    /// <exception cref="ArgumentException">At least one check failed.</exception>
    public static void ThrowIfInvalid(this IValidatableOptions options, string? paramName = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<OptionError> errors = options.GetValidationErrors();
        if (errors.Count == 0) return;
        string message = $"Invalid {options.GetType().Name}: " + string.Join(" ", errors.Select(e => e.Message));
        throw new ArgumentException(message, paramName ?? errors[0].Field);
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

    /// <summary>
    /// Adds every error of a nested options object, each field prefixed with the property that holds it
    /// (<c>ModuleGradientClip.OtherMaxNorm</c>). Does nothing when <paramref name="nested"/> is null.
    /// </summary>
    /// <param name="errors">The list to append to.</param>
    /// <param name="field">The property holding the nested options, e.g. <c>nameof(ModuleGradientClip)</c>.</param>
    /// <param name="nested">The nested options, or null when the property is unset.</param>
    public static void AddNested(this List<OptionError> errors, string field, IValidatableOptions? nested)
    {
        ArgumentNullException.ThrowIfNull(errors);
        if (nested is null) return;
        foreach (OptionError e in nested.GetValidationErrors()) errors.Add(e with { Field = $"{field}.{e.Field}" });
    }

    /// <summary>True when <paramref name="value"/> is a finite number (neither NaN nor infinite).</summary>
    /// <param name="value">The value to test.</param>
    public static bool IsFinite(double value) => double.IsFinite(value);
}
