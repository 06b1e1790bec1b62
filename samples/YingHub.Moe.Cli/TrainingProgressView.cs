using Spectre.Console;
using YingHub.Moe.Training;
using YingHub.Moe.Training.Tracking;

namespace YingHub.Moe.Cli;

/// <summary>
/// How <c>yinghub train</c> shows progress: a Spectre.Console bar (step, loss, learning rate, tokens/s, ETA) on an
/// interactive console, or plain lines at every evaluation when the output is redirected or with <c>--json</c>.
/// </summary>
internal static class TrainingProgressView
{
    /// <summary>Whether to draw a bar: not with <c>--json</c>, not when standard output is redirected.</summary>
    public static bool UseBar(bool json) => !json && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>
    /// The plain line of an evaluation point, or null for a log point (plain output prints evaluations only); with the
    /// metrics of the latest log point, its step time and model FLOPs utilisation too.
    /// </summary>
    public static string? PlainLine(TrainingProgress p, int totalSteps, IReadOnlyDictionary<string, double>? lastStep = null) => p.ValidationLoss is { } val
        ? $"step {p.Step,6}/{totalSteps}: train loss {p.TrainLoss:F3}, val loss {val:F3}, lr {p.LearningRate:G3}, {p.TokensPerSecond:N0} tokens/s{Speed(lastStep, ", ")}"
        : null;

    /// <summary>The bar's description of a progress point.</summary>
    public static string Describe(TrainingProgress p, int totalSteps) =>
        $"step {p.Step}/{totalSteps}  loss {p.TrainLoss:F3}  lr {p.LearningRate:G3}  {p.TokensPerSecond:N0} tok/s{Speed(p.Metrics, "  ")}";

    /// <summary><c>, 152 ms/step, MFU 31%</c> from a log point's metrics, or nothing.</summary>
    private static string Speed(IReadOnlyDictionary<string, double>? metrics, string separator) =>
        metrics is not null && metrics.TryGetValue(MetricNames.MillisecondsPerStep, out double ms) && metrics.TryGetValue(MetricNames.Mfu, out double mfu)
            ? $"{separator}{ms:F0} ms/step{separator}MFU {mfu:P0}"
            : "";

    /// <summary>
    /// Runs <paramref name="body"/>, which receives the progress handler to subscribe; with <paramref name="bar"/>
    /// inside a live progress display starting at <paramref name="firstStep"/>.
    /// </summary>
    public static T Run<T>(bool bar, long firstStep, int totalSteps, Func<Action<TrainingProgress>, T> body)
    {
        IReadOnlyDictionary<string, double>? lastStep = null; // the latest log point's metrics (step time, MFU)
        void Remember(TrainingProgress p)
        {
            if (p.Metrics is { } m && m.ContainsKey(MetricNames.MillisecondsPerStep)) lastStep = m;
        }

        if (!bar)
        {
            return body(p =>
            {
                Remember(p);
                if (PlainLine(p, totalSteps, lastStep) is { } line) Console.WriteLine(line);
            });
        }

        return Bar($"step {firstStep}/{totalSteps}  starting", firstStep, totalSteps, task => body(p =>
        {
            Remember(p);
            task.Value = p.Step;
            task.Description = Markup.Escape(Describe(p, totalSteps));
            if (PlainLine(p, totalSteps, lastStep) is { } line) AnsiConsole.WriteLine(line);
        }));
    }

    /// <summary>
    /// Runs <paramref name="body"/>, which receives a handler to call after each iteration with the iterations done and a
    /// description; a bar on an interactive console (from <paramref name="first"/>), else one plain line per iteration.
    /// </summary>
    public static T RunIterations<T>(bool bar, long first, long total, Func<Action<long, string>, T> body)
    {
        if (!bar) return body((_, description) => Console.WriteLine(description));
        return Bar($"iteration {first}/{total}  starting", first, total, task => body((done, description) =>
        {
            task.Value = done;
            task.Description = Markup.Escape(description);
        }));
    }

    /// <summary>The progress bar of both views (description, bar, percentage, elapsed and remaining time), from <paramref name="first"/> of <paramref name="total"/>.</summary>
    private static T Bar<T>(string start, long first, long total, Func<ProgressTask, T> body) =>
        AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask(Markup.Escape(start), maxValue: total);
                task.Value = first;
                return body(task);
            });
}
