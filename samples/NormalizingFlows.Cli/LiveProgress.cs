using System.Globalization;
using Microsoft.ML.NormalizingFlows.Training;
using Spectre.Console;

namespace NormalizingFlows.Cli;

/// <summary>
/// The training display on a terminal (Spectre.Console): a progress bar with percentage, elapsed time and ETA,
/// and a live line with the window's ELBO and, when the target's log Z is known, KL(q‖p) ≈ log Z − ELBO (the
/// training minibatches' estimate; the final, exact figure is printed after training). When the output is not
/// an interactive terminal (redirected, CI), <see cref="ConsoleProgress"/> prints plain lines instead.
/// </summary>
internal static class LiveProgress
{
    /// <summary>Whether the console can show a live display (a terminal, not a redirected stream).</summary>
    public static bool IsAvailable(IAnsiConsole console) => console.Profile.Capabilities.Interactive && console.Profile.Capabilities.Ansi;

    /// <summary>Runs <paramref name="fit"/> under a live progress display; every report updates it (and goes on to <paramref name="frames"/>).</summary>
    public static FitResult Run(IAnsiConsole console, int iterations, double? logNormalizer, IProgress<TrainingProgress>? frames,
        Func<IProgress<TrainingProgress>, FitResult> fit) =>
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(),
                new ElapsedTimeColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(context =>
            {
                var task = context.AddTask(Describe(null, logNormalizer), maxValue: iterations);
                var result = fit(new Reporter(task, logNormalizer, frames));
                task.Value = result.Iterations;
                if (result.Iterations < iterations) task.StopTask();
                return result;
            });

    /// <summary>"ELBO −2.3051  KL ≈ 0.0140" (markup-escaped), or "training" before the first report.</summary>
    internal static string Describe(TrainingProgress? p, double? logNormalizer)
    {
        if (p is not { } report) return "training";
        var text = string.Create(CultureInfo.InvariantCulture, $"ELBO {report.Elbo,9:F4}");
        if (logNormalizer is double logZ && double.IsFinite(report.Elbo))
            text += string.Create(CultureInfo.InvariantCulture, $"  KL ≈ {logZ - report.Elbo:F4}");
        if (report.SkippedSteps > 0) text += $"  skipped {report.SkippedSteps}";
        return Markup.Escape(text);
    }

    private sealed class Reporter(ProgressTask task, double? logNormalizer, IProgress<TrainingProgress>? frames) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            frames?.Report(value);
            task.Value = value.Iteration;
            task.Description = Describe(value, logNormalizer);
        }
    }
}
