using System.Globalization;

namespace YingHub.Moe.Core.Configuration;

/// <summary>One failed option check: the field, the offending value and the allowed range.</summary>
/// <param name="Field">The option's property name, e.g. <c>WarmupSteps</c>.</param>
/// <param name="Value">The value that failed the check.</param>
/// <param name="Allowed">The allowed range or rule, in words, e.g. <c>&gt;= 0</c>.</param>
public sealed record OptionError(string Field, object? Value, string Allowed)
{
    /// <summary>A one-line message naming the field, its value and the allowed range.</summary>
    public string Message => $"{Field} = {Format(Value)} is invalid; allowed: {Allowed}.";

    /// <inheritdoc />
    public override string ToString() => Message;

    private static string Format(object? value) => value switch
    {
        null => "null",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? string.Empty,
    };
}
