using Spectre.Console;
using YingHub.Moe.Training;

namespace YingHub.Moe.Cli;

/// <summary>
/// How <c>yinghub train</c> shows progress: a Spectre.Console bar (step, loss, learning rate, tokens/s, ETA) on an
/// interactive console, or plain lines at every evaluation when the output is redirected or with <c>--json</c>.
/// </summary>
internal static class TrainingProgressView
{
    /// <summary>Whether to draw a bar: not with <c>--json</c>, not when standard output is redirected.</summary>
    public static bool UseBar(bool json) => !json && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive;

    /// <summary>The plain line of an evaluation point, or null for a log point (plain output prints evaluations only).</summary>
    public static string? PlainLine(TrainingProgress p, int totalSteps) => p.ValidationLoss is { } val
        ? $"step {p.Step,6}/{totalSteps}: train loss {p.TrainLoss:F3}, val loss {val:F3}, lr {p.LearningRate:G3}, {p.TokensPerSecond:N0} tokens/s"
        : null;

    /// <summary>The bar's description of a progress point.</summary>
    public static string Describe(TrainingProgress p, int totalSteps) =>
        $"step {p.Step}/{totalSteps}  loss {p.TrainLoss:F3}  lr {p.LearningRate:G3}  {p.TokensPerSecond:N0} tok/s";

    /// <summary>
    /// Runs <paramref name="body"/>, which receives the progress handler to subscribe; with <paramref name="bar"/>
    /// inside a live progress display starting at <paramref name="firstStep"/>.
    /// </summary>
    public static T Run<T>(bool bar, long firstStep, int totalSteps, Func<Action<TrainingProgress>, T> body)
    {
        if (!bar)
        {
            return body(p =>
            {
                if (PlainLine(p, totalSteps) is { } line) Console.WriteLine(line);
            });
        }

        return AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask(Markup.Escape($"step {firstStep}/{totalSteps}  starting"), maxValue: totalSteps);
                task.Value = firstStep;
                return body(p =>
                {
                    task.Value = p.Step;
                    task.Description = Markup.Escape(Describe(p, totalSteps));
                    if (PlainLine(p, totalSteps) is { } line) AnsiConsole.WriteLine(line);
                });
            });
    }
}
