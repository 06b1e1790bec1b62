using Microsoft.Extensions.Logging;
using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Tracking;

/// <summary>Builds the tracking sinks a <see cref="TrackingOptions"/> asks for.</summary>
public static class TrainingTrackers
{
    /// <summary>The JSON Lines file's name in the run directory.</summary>
    public const string JsonlFileName = "metrics.jsonl";

    /// <summary>The TensorBoard subdirectory of the run directory.</summary>
    public const string TensorBoardDirectoryName = "tensorboard";

    /// <summary>The plots subdirectory of the run directory.</summary>
    public const string PlotsDirectoryName = "plots";

    /// <summary>
    /// A <see cref="CompositeTracker"/> over, in this order: <see cref="JsonlTracker"/> (if <see cref="TrackingOptions.Jsonl"/>),
    /// <see cref="TensorBoardTracker"/> (if <see cref="TrackingOptions.TensorBoard"/>), <see cref="LoggerTracker"/> (if a
    /// logger factory is given), <see cref="PlotTracker"/> (if <see cref="TrackingOptions.PlotInterval"/> &gt; 0; its PNGs
    /// are reported to MLflow when there is one) and <see cref="MlflowTracker"/> (if
    /// <see cref="TrackingOptions.MlflowTrackingUri"/> is set; it starts the run now, so a server that cannot be reached
    /// fails here). Sink failures are logged through the factory's <c>YingHub.Moe.Training.Tracking</c> logger.
    /// </summary>
    /// <param name="options">The sinks to build.</param>
    /// <param name="loggerFactory">Logs metrics lines and sink failures; null for neither.</param>
    /// <exception cref="ArgumentException">Invalid <paramref name="options"/>.</exception>
    /// <exception cref="InvalidOperationException">The MLflow server refused to start the run or could not be reached.</exception>
    public static CompositeTracker Create(TrackingOptions options, ILoggerFactory? loggerFactory = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.ThrowIfInvalid();
        ILogger? logger = loggerFactory?.CreateLogger("YingHub.Moe.Training.Tracking");
        var sinks = new List<ITrainingTracker>();
        try
        {
            string dir = Path.GetFullPath(options.RunDirectory);
            if (options.Jsonl) sinks.Add(new JsonlTracker(Path.Combine(dir, JsonlFileName)));
            if (options.TensorBoard) sinks.Add(new TensorBoardTracker(Path.Combine(dir, TensorBoardDirectoryName)));
            if (logger is not null) sinks.Add(new LoggerTracker(logger));
            MlflowTracker? mlflow = null;
            if (options.MlflowTrackingUri is not null)
            {
                var mlflowOptions = MlflowTrackerOptions.FromEnvironment(options.MlflowTrackingUri);
                if (options.MlflowExperimentName is not null) mlflowOptions.ExperimentName = options.MlflowExperimentName;
                mlflowOptions.RunName = options.RunName;
                mlflow = new MlflowTracker(mlflowOptions, logger: logger);
            }

            if (options.PlotInterval > 0) sinks.Add(new PlotTracker(Path.Combine(dir, PlotsDirectoryName), options.PlotInterval, mlflow, curves: options.CurvePlots));
            if (mlflow is not null) sinks.Add(mlflow);
            return new CompositeTracker(sinks, logger);
        }
        catch
        {
            foreach (ITrainingTracker sink in sinks) sink.Dispose();
            throw;
        }
    }
}
