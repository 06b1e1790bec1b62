using System.Globalization;

namespace YingHub.Moe.Rl.Curriculum;

/// <summary>
/// Built-in <see cref="IResponseLengthSchedule"/>s, and <see cref="Parse"/> for the CLI. Every schedule checks its
/// lengths: a length below 1 throws, naming the iteration.
/// </summary>
public static class ResponseLengthSchedules
{
    /// <summary>The first length of <see cref="YingHubV2"/>.</summary>
    public const int YingHubV2Start = 48;

    /// <summary>Tokens added per iteration by <see cref="YingHubV2"/> during its first <see cref="YingHubV2FastIterations"/> iterations.</summary>
    public const int YingHubV2FastStep = 4;

    /// <summary>Iterations of fast growth in <see cref="YingHubV2"/>.</summary>
    public const int YingHubV2FastIterations = 10;

    /// <summary>Tokens added per iteration by <see cref="YingHubV2"/> afterwards.</summary>
    public const int YingHubV2SlowStep = 2;

    /// <summary>The formats <see cref="Parse"/> accepts.</summary>
    public static IReadOnlyList<string> KnownFormats { get; } = ["constant:<length>", "linear:<start>:<step>[:<every>]", "yinghub-v2"];

    /// <summary>The same length every iteration.</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="length"/> is below 1.</exception>
    public static IResponseLengthSchedule Constant(int length)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        return new FunctionSchedule(_ => length, $"constant:{length}");
    }

    /// <summary>
    /// <c>min(max, start + step · ⌊i / every⌋)</c>: <paramref name="step"/> more tokens every <paramref name="every"/>
    /// iterations, capped at <paramref name="maxLength"/> (e.g. the context minus the prompt).
    /// </summary>
    /// <param name="start">The length at iteration 0, ≥ 1.</param>
    /// <param name="step">Tokens added at each step; negative shrinks (a length below 1 then throws).</param>
    /// <param name="every">Iterations per step, ≥ 1.</param>
    /// <param name="maxLength">The cap, ≥ 1; null for none.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="start"/>, <paramref name="every"/> or <paramref name="maxLength"/> is below 1.</exception>
    public static IResponseLengthSchedule Stepwise(int start, int step, int every = 1, int? maxLength = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(start, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(every, 1);
        if (maxLength is { } m) ArgumentOutOfRangeException.ThrowIfLessThan(m, 1, nameof(maxLength));
        long cap = maxLength ?? int.MaxValue;
        return new FunctionSchedule(i =>
            {
                long steps = Math.Min(i / every, int.MaxValue); // beyond it any step ≠ 0 has left the int range: no overflow of the product
                return (int)Math.Clamp(start + step * steps, int.MinValue, cap);
            },
            $"linear:{start}:{step}:{every}" + (maxLength is null ? "" : $" (max {maxLength})"));
    }

    /// <summary>
    /// YingHub-v2's curriculum: 48 tokens, 4 more per iteration for the first 10 iterations, then 2 more per
    /// iteration, capped at <paramref name="maxLength"/> (the context): <c>min(max, i &lt; 10 ? 48 + 4i : 88 + 2(i − 10))</c>.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxLength"/> is below 1.</exception>
    public static IResponseLengthSchedule YingHubV2(int maxLength)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 1);
        const long fastEnd = YingHubV2Start + (long)YingHubV2FastStep * YingHubV2FastIterations; // 88
        return new FunctionSchedule(i => (int)Math.Min(maxLength, i < YingHubV2FastIterations
                ? YingHubV2Start + YingHubV2FastStep * i
                : fastEnd + YingHubV2SlowStep * Math.Min(i - YingHubV2FastIterations, int.MaxValue)),
            $"yinghub-v2 (max {maxLength})");
    }

    /// <summary>Any function of the iteration; each value is checked when asked for.</summary>
    /// <exception cref="InvalidOperationException">(from <see cref="IResponseLengthSchedule.LengthAt"/>) The function returned a length below 1.</exception>
    public static IResponseLengthSchedule FromFunction(Func<long, int> lengthAt)
    {
        ArgumentNullException.ThrowIfNull(lengthAt);
        return new FunctionSchedule(lengthAt, "function");
    }

    /// <summary>
    /// A schedule from the CLI: <c>constant:48</c>, <c>linear:48:4</c> (start 48, +4 per iteration),
    /// <c>linear:48:4:5</c> (+4 every 5 iterations) or <c>yinghub-v2</c>; all capped at <paramref name="maxLength"/>.
    /// </summary>
    /// <param name="value">The specification (case-insensitive).</param>
    /// <param name="maxLength">The longest response allowed (e.g. the context minus the longest prompt), ≥ 1.</param>
    /// <exception cref="ArgumentException">
    /// An unknown format (the message lists <see cref="KnownFormats"/>), a bad number, or a first length above
    /// <paramref name="maxLength"/>.
    /// </exception>
    public static IResponseLengthSchedule Parse(string value, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 1);
        string[] parts = value.Trim().ToLowerInvariant().Split(':');
        IResponseLengthSchedule schedule = parts switch
        {
            ["constant", var n] => Constant(Number(value, n, 1)),
            ["linear", var start, var step] => Stepwise(Number(value, start, 1), Number(value, step, null), 1, maxLength),
            ["linear", var start, var step, var every] => Stepwise(Number(value, start, 1), Number(value, step, null), Number(value, every, 1), maxLength),
            ["yinghub-v2"] => YingHubV2(maxLength),
            _ => throw new ArgumentException($"Unknown response-length schedule '{value}'; known: {string.Join(", ", KnownFormats)}.", nameof(value)),
        };
        int first = schedule.LengthAt(0);
        if (first > maxLength)
            throw new ArgumentException($"The schedule '{value}' starts at {first} tokens, above the longest allowed response ({maxLength}).", nameof(value));
        return schedule;
    }

    private static int Number(string value, string part, int? min)
    {
        if (!int.TryParse(part, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int n) || n < min)
            throw new ArgumentException($"'{part}' in the schedule '{value}' is not an integer{(min is null ? "" : $" ≥ {min}")}.", nameof(value));
        return n;
    }

    /// <summary>A schedule from a function, with its values checked.</summary>
    private sealed class FunctionSchedule(Func<long, int> lengthAt, string description) : IResponseLengthSchedule
    {
        public int LengthAt(long iteration)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(iteration);
            int length = lengthAt(iteration);
            if (length < 1)
                throw new InvalidOperationException($"The response-length schedule {description} gives {length} tokens at iteration {iteration}; lengths must be ≥ 1.");
            return length;
        }

        public override string ToString() => description;
    }
}
