using System.Globalization;
using Microsoft.ML.NormalizingFlows;
using Microsoft.ML.NormalizingFlows.Platform;
using Microsoft.ML.NormalizingFlows.Diagnostics;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Plotting;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;
using Spectre.Console;

namespace NormalizingFlows.Cli;

/// <summary>Runs one experiment as the options describe: build, fit, evaluate, draw.</summary>
internal static class CliRunner
{
    /// <summary>Exit code after Ctrl+C (128 + SIGINT, the shell convention), once what was fitted has been written.</summary>
    public const int InterruptedExitCode = 130;

    /// <summary>Runs with plain progress lines on <paramref name="output"/> (tests, redirected output).</summary>
    public static int Run(CliOptions o, TextWriter output, CancellationToken cancellationToken = default) => Run(o, output, null, cancellationToken);

    /// <summary>Runs; with an interactive <paramref name="console"/>, training shows a live progress display on it.</summary>
    public static int Run(CliOptions o, TextWriter output, IAnsiConsole? console, CancellationToken cancellationToken = default)
    {
        var target = CreateTarget(o.Target);
        CliOptions.RequireTwoDimensional(target, o.Target);
        // Checked before anything is written, so a bad device leaves no empty output folder behind.
        try { DeviceSelector.Resolve(o.Device); }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            throw new CliUsageException(e.Message.ReplaceLineEndings(" "), e);
        }
        var directory = Path.GetFullPath(o.Output);
        try { Directory.CreateDirectory(directory); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"Cannot create output folder '{directory}': {e.Message}", e);
        }
        var trainerOptions = o.ToTrainerOptions();

        var q = FlowFactory.Create(o.Flow, target.Dimension, o.Layers, o.Seed, o.FlowSettings);
        string flowTitle = (o.Flow is "planar" or "radial" ? $"{o.Flow} K={o.Layers}" : o.Flow)
            + (o.FlowSettings.Count > 0 ? $" ({string.Join(", ", o.FlowSettings.Select(kv => $"{kv.Key}={kv.Value}"))})" : "");
        string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

        output.WriteLine(I($"Target   {target.Name}{Describe(target)}"));
        output.WriteLine(I($"Flow     {flowTitle} ({q.parameters().Sum(p => p.numel()):N0} parameters), seed {o.Seed}"));
        output.WriteLine(I($"Training {o.Optimizer} lr {o.LearningRate:G4}{(o.LearningRateDecay < 1 ? I($" decay {o.LearningRateDecay:G4}") : "")}, batch {o.BatchSize}, {o.Iterations:N0} iterations, {o.Precision.ToString().ToLowerInvariant()} on {o.Device}{(o.Threads is int t ? I($", threads {t}") : "")} (preset {o.Preset})"));
        output.WriteLine($"Output   {directory}");

        FrameRecorder? frames = null;
        if (o.FramesEvery is int every)
        {
            var background = DensityGrid.ForTarget(target, FitPictures.PlotBox(target), 150);
            frames = new FrameRecorder(q, background, Path.Combine(directory, "frames"), every, flowTitle);
        }
        FitResult fit;
        try
        {
            fit = console is not null && LiveProgress.IsAvailable(console)
                ? LiveProgress.Run(console, trainerOptions.Iterations, target.LogNormalizer, frames,
                    progress => VariationalTrainer.Fit(q, target, trainerOptions, progress, cancellationToken))
                : VariationalTrainer.Fit(q, target, trainerOptions, new ConsoleProgress(output, CliOptions.PrintEvery, frames), cancellationToken);
        }
        catch (TrainingDivergedException e)
        {
            // The best parameters were restored: say what they are worth, then fail.
            if (e.Result is FitResult diverged) output.WriteLine(FitReport.Create(q, target, diverged, CliOptions.EvaluationDraws).Format());
            output.Flush();
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
        if (fit.Cancelled) output.WriteLine(I($"Cancelled after {fit.Iterations:N0} iterations; evaluating and drawing what was fitted."));

        var estimate = Evaluation.EstimateElbo(q, target, CliOptions.EvaluationDraws);
        output.WriteLine(I($"Final    ELBO {estimate.Elbo:F4} ± {estimate.StandardError:F4} ({estimate.Samples:N0} fresh draws)"));
        output.WriteLine(estimate.Kl is double kl
            ? I($"         KL(q‖p) = log Z − ELBO = {kl:F4} ± {estimate.StandardError:F4} nats (log Z = {estimate.LogNormalizer:F5})")
            : "         KL(q‖p) unknown: the target has no known log Z");
        output.WriteLine(I($"Time     {fit.Elapsed.TotalSeconds:F1} s training ({fit.Elapsed.TotalMilliseconds / Math.Max(1, fit.Iterations):F2} ms/iteration){(fit.SkippedSteps > 0 ? I($", {fit.SkippedSteps} skipped steps") : "")}"));

        output.WriteLine(FitReport.Create(q, target, fit, CliOptions.EvaluationDraws).Format());

        var written = FitPictures.WriteAll(directory, q, target, fit, flowTitle);
        foreach (var path in written) output.WriteLine($"Wrote    {path}");
        if (frames is not null)
            output.WriteLine(I($"Wrote    {frames.Frames.Count} frames in {Path.Combine(directory, "frames")} (frame_00001.png ...)"));
        return fit.Cancelled ? InterruptedExitCode : 0;
    }

    /// <summary>Creates the target; a missing or unreadable image is a usage error, not a crash.</summary>
    private static Target CreateTarget(string name)
    {
        try { return TargetGallery.Create(name); }
        catch (Exception e) when (e is ArgumentException or InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new CliUsageException($"Cannot use target '{name}': {e.Message.ReplaceLineEndings(" ")}", e);
        }
    }

    private static string Describe(Target target)
    {
        var text = target is EnergyTarget e ? $": {e.Description}" : "";
        return target.LogNormalizer is double logZ ? text + $" log Z = {logZ.ToString("F5", CultureInfo.InvariantCulture)}" : text;
    }
}
