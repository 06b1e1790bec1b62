using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Tracking;

/// <summary>A PNG plot of chosen metrics against the step, drawn by <see cref="PlotTracker"/> (e.g. an RL run's reward and KL).</summary>
/// <param name="FileName">The file in the plots directory: a plain name ending in <c>.png</c>.</param>
/// <param name="Title">The plot's title.</param>
/// <param name="YLabel">The y axis's label.</param>
/// <param name="Metrics">The metric names drawn, one line each (at least one).</param>
public sealed record CurvePlot(string FileName, string Title, string YLabel, IReadOnlyList<string> Metrics) : IValidatableOptions
{
    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(!string.IsNullOrEmpty(FileName) && FileName.EndsWith(".png", StringComparison.OrdinalIgnoreCase)
            && FileName.IndexOfAny([.. Path.GetInvalidFileNameChars(), '/', '\\']) < 0, nameof(FileName), FileName, "a plain file name ending in .png");
        errors.Require(Title is not null, nameof(Title), Title, "a title");
        errors.Require(YLabel is not null, nameof(YLabel), YLabel, "a label");
        errors.Require(Metrics is { Count: > 0 } && Metrics.All(m => !string.IsNullOrEmpty(m)), nameof(Metrics),
            Metrics is null ? null : string.Join(",", Metrics), "one or more metric names");
        return errors;
    }
}
