using YingHub.Moe.Core.Configuration;

namespace YingHub.Moe.Training.Tracking;

/// <summary>
/// Keeps the curves a run reports and draws them as PNG files in a directory with <see cref="TrainingPlots"/>:
/// <c>loss.png</c> (<c>train/loss</c> and <c>val/loss</c> vs step), <c>lr.png</c> (<c>lr</c> vs step) and
/// <c>expert_load.png</c> (a layers × experts heatmap of the latest <c>expert_load/{layer}/{expert}</c> values) and
/// <c>dropped.png</c> (the capacity-drop shares <c>dropped/{layer}</c> and <c>dropped/mean</c> vs step). The
/// plots, and any <see cref="CurvePlot"/> given (e.g. an RL run's reward and KL), are redrawn every <see cref="Interval"/> <see cref="LogMetrics"/> calls and at <see cref="Complete"/>; a plot
/// without data is not written. Each written file is reported to the optional artifact sink through
/// <see cref="ITrainingTracker.LogArtifact"/> (for example an <see cref="MlflowTracker"/>, which uploads it). The
/// artifact sink is not owned: it is neither completed nor disposed here, so in a <see cref="CompositeTracker"/> put
/// this tracker before it. Parameters, tags and artifacts logged to this tracker are ignored.
/// </summary>
public sealed class PlotTracker : ITrainingTracker
{
    /// <summary>File name of the loss plot.</summary>
    public const string LossFileName = "loss.png";

    /// <summary>File name of the learning-rate plot.</summary>
    public const string LearningRateFileName = "lr.png";

    /// <summary>File name of the expert-load heatmap.</summary>
    public const string ExpertLoadFileName = "expert_load.png";

    /// <summary>File name of the capacity-drop plot.</summary>
    public const string DroppedFileName = "dropped.png";

    private readonly SortedDictionary<string, List<MetricPoint>> _dropped = new(StringComparer.Ordinal);
    private readonly List<MetricPoint> _train = [];
    private readonly List<MetricPoint> _validation = [];
    private readonly List<MetricPoint> _learningRate = [];
    private readonly Dictionary<(int Layer, int Expert), double> _load = [];
    private readonly ITrainingTracker? _artifacts;
    private readonly IReadOnlyList<CurvePlot> _curvePlots;
    private readonly Dictionary<string, List<MetricPoint>> _curves = new(StringComparer.Ordinal);
    private readonly int _width;
    private readonly int _height;
    private long _calls;

    /// <summary>A plot tracker writing into <paramref name="directory"/> (created if needed).</summary>
    /// <param name="directory">Where the PNG files go.</param>
    /// <param name="interval">Redraw every this many <see cref="LogMetrics"/> calls; &gt;= 1.</param>
    /// <param name="artifacts">Receives each written PNG via <see cref="ITrainingTracker.LogArtifact"/>; not owned.</param>
    /// <param name="width">Image width in pixels, 100 to 10,000.</param>
    /// <param name="height">Image height in pixels, 100 to 10,000.</param>
    /// <param name="curves">More plots of chosen metrics against the step; file names must differ from each other and from the built-in plots'.</param>
    public PlotTracker(string directory, int interval = 100, ITrainingTracker? artifacts = null,
        int width = TrainingPlots.DefaultWidth, int height = TrainingPlots.DefaultHeight, IReadOnlyList<CurvePlot>? curves = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (interval < 1) throw new ArgumentException($"interval = {interval} is invalid; allowed: >= 1.", nameof(interval));
        if (width is < 100 or > 10_000) throw new ArgumentException($"width = {width} is invalid; allowed: 100 to 10000 pixels.", nameof(width));
        if (height is < 100 or > 10_000) throw new ArgumentException($"height = {height} is invalid; allowed: 100 to 10000 pixels.", nameof(height));
        _curvePlots = curves ?? [];
        var files = new HashSet<string>([LossFileName, LearningRateFileName, ExpertLoadFileName, DroppedFileName], StringComparer.OrdinalIgnoreCase);
        foreach (var curve in _curvePlots)
        {
            ArgumentNullException.ThrowIfNull(curve, nameof(curves));
            curve.ThrowIfInvalid(nameof(curves));
            if (!files.Add(curve.FileName)) throw new ArgumentException($"curves: the file name '{curve.FileName}' is used twice (or by a built-in plot).", nameof(curves));
            foreach (string metric in curve.Metrics) _curves.TryAdd(metric, []);
        }

        Directory = Path.GetFullPath(directory);
        System.IO.Directory.CreateDirectory(Directory);
        Interval = interval;
        _artifacts = artifacts;
        _width = width;
        _height = height;
    }

    /// <summary>The directory holding the PNG files.</summary>
    public string Directory { get; }

    /// <summary>Redraw period, in <see cref="LogMetrics"/> calls.</summary>
    public int Interval { get; }

    /// <inheritdoc />
    public void LogParameters(IReadOnlyDictionary<string, string> parameters) => TrackerGuards.Strings(parameters, nameof(parameters));

    /// <inheritdoc />
    public void LogMetrics(long step, IReadOnlyDictionary<string, double> metrics)
    {
        TrackerGuards.Metrics(step, metrics);
        foreach (var (name, value) in metrics)
        {
            if (_curves.TryGetValue(name, out var curve)) curve.Add(new(step, value));
            switch (name)
            {
                case MetricNames.TrainLoss: _train.Add(new(step, value)); break;
                case MetricNames.ValidationLoss: _validation.Add(new(step, value)); break;
                case MetricNames.LearningRate: _learningRate.Add(new(step, value)); break;
                default:
                    if (MetricNames.TryParseExpertLoad(name, out int layer, out int expert)) _load[(layer, expert)] = value;
                    else if (name.StartsWith(MetricNames.DroppedPrefix, StringComparison.Ordinal))
                    {
                        if (!_dropped.TryGetValue(name, out var points)) _dropped[name] = points = [];
                        points.Add(new(step, value));
                    }

                    break;
            }
        }

        if (++_calls % Interval == 0) Render();
    }

    /// <inheritdoc />
    public void SetTags(IReadOnlyDictionary<string, string> tags) => TrackerGuards.Strings(tags, nameof(tags));

    /// <inheritdoc />
    public void LogArtifact(string path) => TrackerGuards.ExistingFile(path);

    /// <inheritdoc />
    public void Complete(TrainingRunStatus status) => Render();

    /// <summary>Draws every plot that has data now, reports each file to the artifact sink and returns their paths.</summary>
    public IReadOnlyList<string> Render()
    {
        var written = new List<string>();
        if (_train.Count > 0 || _validation.Count > 0)
        {
            string path = Path.Combine(Directory, LossFileName);
            TrainingPlots.SaveLossCurves(path, _train, _validation, _width, _height);
            written.Add(path);
        }

        if (_learningRate.Count > 0)
        {
            string path = Path.Combine(Directory, LearningRateFileName);
            TrainingPlots.SaveLearningRate(path, _learningRate, _width, _height);
            written.Add(path);
        }

        if (_load.Count > 0)
        {
            string path = Path.Combine(Directory, ExpertLoadFileName);
            TrainingPlots.SaveExpertLoadHeatmap(path, LoadMatrix(), _width, _height);
            written.Add(path);
        }

        if (_dropped.Count > 0)
        {
            string path = Path.Combine(Directory, DroppedFileName);
            TrainingPlots.SaveDropped(path, _dropped, _width, _height);
            written.Add(path);
        }

        foreach (var curve in _curvePlots)
        {
            var series = curve.Metrics.Where(m => _curves[m].Count > 0).ToDictionary(m => m, m => (IReadOnlyList<MetricPoint>)_curves[m], StringComparer.Ordinal);
            if (series.Count == 0) continue;
            string path = Path.Combine(Directory, curve.FileName);
            TrainingPlots.SaveCurves(path, curve.Title, curve.YLabel, series, _width, _height);
            written.Add(path);
        }

        foreach (string path in written) _artifacts?.LogArtifact(path);
        return written;
    }

    /// <summary>The latest expert loads as a (layers, experts) matrix; cells never reported are NaN.</summary>
    internal double[,] LoadMatrix()
    {
        int layers = _load.Keys.Max(k => k.Layer) + 1, experts = _load.Keys.Max(k => k.Expert) + 1;
        var matrix = new double[layers, experts];
        for (int l = 0; l < layers; l++)
            for (int e = 0; e < experts; e++)
                matrix[l, e] = _load.TryGetValue((l, e), out double v) ? v : double.NaN;
        return matrix;
    }

    /// <inheritdoc />
    public void Dispose()
    {
    }
}
