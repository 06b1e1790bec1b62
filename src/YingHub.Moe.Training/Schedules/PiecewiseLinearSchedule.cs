namespace YingHub.Moe.Training.Schedules;

/// <summary>
/// A value that varies linearly between knots over training progress (a fraction of the run, usually in [0, 1]), as
/// <c>numpy.interp</c>: before the first knot it holds the first value, after the last knot the last value. Used for
/// the stage-wise global clip norm and the dynamic token-masking probability (see <see cref="YingHubV2Schedules"/>).
/// </summary>
[System.Text.Json.Serialization.JsonConverter(typeof(PiecewiseLinearScheduleJsonConverter))]
public sealed class PiecewiseLinearSchedule
{
    private readonly double[] _x;
    private readonly double[] _y;

    /// <summary>Creates a schedule through <paramref name="knots"/>.</summary>
    /// <param name="knots">At least one (progress, value) pair; finite numbers, progress strictly increasing.</param>
    /// <exception cref="ArgumentException">No knots, a non-finite number, or progress not strictly increasing.</exception>
    public PiecewiseLinearSchedule(IReadOnlyList<(double Progress, double Value)> knots)
    {
        ArgumentNullException.ThrowIfNull(knots);
        if (knots.Count == 0)
            throw new ArgumentException("knots.Count = 0 is invalid; allowed: >= 1.", nameof(knots));
        for (int i = 0; i < knots.Count; i++)
        {
            (double x, double y) = knots[i];
            if (!double.IsFinite(x) || !double.IsFinite(y))
                throw new ArgumentException($"knots[{i}] = ({x}, {y}) is invalid; allowed: finite numbers.", nameof(knots));
            if (i > 0 && x <= knots[i - 1].Progress)
                throw new ArgumentException(
                    $"knots[{i}].Progress = {x} is invalid; allowed: > knots[{i - 1}].Progress = {knots[i - 1].Progress} (strictly increasing).", nameof(knots));
        }

        _x = knots.Select(k => k.Progress).ToArray();
        _y = knots.Select(k => k.Value).ToArray();
    }

    /// <summary>The knots, in order.</summary>
    public IReadOnlyList<(double Progress, double Value)> Knots => _x.Zip(_y).ToArray();

    /// <summary>The value at <paramref name="progress"/>, interpolated linearly between the surrounding knots.</summary>
    /// <param name="progress">Training progress; any finite number (values outside the knots hold the end values).</param>
    /// <exception cref="ArgumentException"><paramref name="progress"/> is NaN or infinite.</exception>
    public double At(double progress)
    {
        if (!double.IsFinite(progress))
            throw new ArgumentException($"progress = {progress} is invalid; allowed: a finite number.", nameof(progress));
        if (progress <= _x[0]) return _y[0];
        if (progress >= _x[^1]) return _y[^1];
        int hi = Array.BinarySearch(_x, progress);
        if (hi >= 0) return _y[hi];
        hi = ~hi;
        int lo = hi - 1;
        double t = (progress - _x[lo]) / (_x[hi] - _x[lo]);
        return _y[lo] + t * (_y[hi] - _y[lo]);
    }

    /// <summary>The value at progress <c>step / totalSteps</c>.</summary>
    /// <param name="step">The 0-based step; &gt;= 0.</param>
    /// <param name="totalSteps">The run length in steps; &gt; 0.</param>
    /// <exception cref="ArgumentException"><paramref name="step"/> is negative or <paramref name="totalSteps"/> not positive.</exception>
    public double AtStep(long step, long totalSteps)
    {
        ScheduleGuards.NonNegativeStep(step);
        if (totalSteps <= 0)
            throw new ArgumentException($"totalSteps = {totalSteps} is invalid; allowed: > 0.", nameof(totalSteps));
        return At(step / (double)totalSteps);
    }
}

/// <summary>Reads and writes a <see cref="PiecewiseLinearSchedule"/> as its knots, <c>[[progress, value], ...]</c>.</summary>
public sealed class PiecewiseLinearScheduleJsonConverter : System.Text.Json.Serialization.JsonConverter<PiecewiseLinearSchedule>
{
    /// <inheritdoc />
    public override PiecewiseLinearSchedule Read(ref System.Text.Json.Utf8JsonReader reader, Type typeToConvert, System.Text.Json.JsonSerializerOptions options)
    {
        var knots = System.Text.Json.JsonSerializer.Deserialize<double[][]>(ref reader, options)
            ?? throw new System.Text.Json.JsonException("A piecewise-linear schedule must be an array of [progress, value] pairs.");
        if (knots.Any(k => k is null || k.Length != 2))
            throw new System.Text.Json.JsonException("A piecewise-linear schedule must be an array of [progress, value] pairs.");
        try
        {
            return new PiecewiseLinearSchedule(knots.Select(k => (k[0], k[1])).ToArray());
        }
        catch (ArgumentException ex)
        {
            throw new System.Text.Json.JsonException(ex.Message, ex);
        }
    }

    /// <inheritdoc />
    public override void Write(System.Text.Json.Utf8JsonWriter writer, PiecewiseLinearSchedule value, System.Text.Json.JsonSerializerOptions options)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(value);
        writer.WriteStartArray();
        foreach (var (progress, knotValue) in value.Knots)
        {
            writer.WriteStartArray();
            writer.WriteNumberValue(progress);
            writer.WriteNumberValue(knotValue);
            writer.WriteEndArray();
        }

        writer.WriteEndArray();
    }
}
