using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Tracking;

/// <summary>Which tracking sinks <see cref="TrainingTrackers.Create"/> builds for a run, and where they write.</summary>
public sealed class TrackingOptions : IValidatableOptions
{
    /// <summary>The run's directory: <c>metrics.jsonl</c>, <c>tensorboard/</c> and <c>plots/</c> go here. Non-empty.</summary>
    public string RunDirectory { get; set; } = "runs/run";

    /// <summary>Write <c>{RunDirectory}/metrics.jsonl</c> (<see cref="JsonlTracker"/>). Default true.</summary>
    public bool Jsonl { get; set; } = true;

    /// <summary>Write TensorBoard event files to <c>{RunDirectory}/tensorboard</c> (<see cref="TensorBoardTracker"/>). Default false.</summary>
    public bool TensorBoard { get; set; }

    /// <summary>
    /// An MLflow tracking server, e.g. <c>http://127.0.0.1:5000</c>; null for none. Credentials, and the experiment when
    /// <see cref="MlflowExperimentName"/> is null, come from MLflow's environment variables
    /// (<see cref="MlflowTrackerOptions.FromEnvironment"/>).
    /// </summary>
    public string? MlflowTrackingUri { get; set; }

    /// <summary>The MLflow experiment; null uses <c>MLFLOW_EXPERIMENT_NAME</c> or <c>yinghub-moe</c>.</summary>
    public string? MlflowExperimentName { get; set; }

    /// <summary>The MLflow run name; null lets MLflow choose.</summary>
    public string? RunName { get; set; }

    /// <summary>
    /// Redraw the PNG plots in <c>{RunDirectory}/plots</c> every this many metric calls (<see cref="PlotTracker"/>), and
    /// at the end; 0 for no plots. 0 to 1,000,000. Default 100.
    /// </summary>
    public int PlotInterval { get; set; } = 100;

    /// <summary>More PNG plots of chosen metrics against the step (e.g. an RL run's reward and KL), beside the built-in ones.</summary>
    public List<CurvePlot> CurvePlots { get; set; } = [];

    /// <inheritdoc />
    public IReadOnlyList<OptionError> GetValidationErrors()
    {
        var errors = new List<OptionError>();
        errors.Require(!string.IsNullOrWhiteSpace(RunDirectory), nameof(RunDirectory), RunDirectory, "a non-empty path");
        errors.Require(PlotInterval is >= 0 and <= 1_000_000, nameof(PlotInterval), PlotInterval, "0 (no plots) to 1000000");
        bool uriOk = MlflowTrackingUri is null
            || (Uri.TryCreate(MlflowTrackingUri, UriKind.Absolute, out Uri? uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps));
        errors.Require(uriOk, nameof(MlflowTrackingUri), MlflowTrackingUri, "null, or an absolute http:// or https:// URI such as http://127.0.0.1:5000");
        errors.Require(CurvePlots is not null, nameof(CurvePlots), null, "a list of plots");
        for (int i = 0; i < (CurvePlots?.Count ?? 0); i++)
        {
            if (CurvePlots![i] is { } plot) errors.AddNested($"{nameof(CurvePlots)}[{i}]", plot);
            else errors.Require(false, $"{nameof(CurvePlots)}[{i}]", null, "a plot");
        }

        errors.Require(MlflowExperimentName is null || !string.IsNullOrWhiteSpace(MlflowExperimentName), nameof(MlflowExperimentName), MlflowExperimentName, "null or a non-empty name");
        return errors;
    }
}
