using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;

namespace Microsoft.ML.NormalizingFlows.Plotting;

/// <summary>The standard set of pictures of a finished 2-D fit, in one call (what the CLI writes).</summary>
public static class FitPictures
{
    public const string DensityFile = "density.png";
    public const string SamplesFile = "samples.png";
    public const string TrainingFile = "training.png";

    /// <summary>The box pictures of a target use: its support, or [−8, 8]² when it names none.</summary>
    public static Box PlotBox(Target target)
    {
        ArgumentNullException.ThrowIfNull(target);
        return target.Support ?? new Box(-8, 8, -8, 8);
    }

    /// <summary>
    /// Writes density.png (true vs fitted), samples.png (draws over the true density) and training.png
    /// (ELBO or KL curve) into <paramref name="directory"/>; returns their paths.
    /// </summary>
    public static IReadOnlyList<string> WriteAll(string directory, FlowDistribution q, Target target, FitResult fit,
        string flowTitle, int resolution = 200, int sampleCount = 2000)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(fit);
        if (string.IsNullOrWhiteSpace(directory)) throw new ArgumentException("An output directory is required.", nameof(directory));
        Directory.CreateDirectory(directory);
        var box = PlotBox(target);
        var truth = DensityGrid.ForTarget(target, box, resolution);
        var fitted = DensityGrid.ForFlow(q, box, resolution);

        var densityPath = Path.Combine(directory, DensityFile);
        DensityComparisonPlot.Save(densityPath, truth, fitted, target.Name, flowTitle);

        var samplesPath = Path.Combine(directory, SamplesFile);
        var (xs, ys) = SamplesPlot.Draw(q, sampleCount, seed: 7);
        SamplesPlot.Save(samplesPath, xs, ys, truth, $"{flowTitle} on {target.Name}: {sampleCount:N0} draws over the true density");

        var trainingPath = Path.Combine(directory, TrainingFile);
        var curveTitle = target.LogNormalizer is null
            ? $"Training: ELBO over {fit.Iterations:N0} iterations ({target.Name}, log Z unknown)"
            : $"Training: KL(q‖p) over {fit.Iterations:N0} iterations ({target.Name})";
        TrainingCurvePlot.Save(trainingPath, fit.ElboTrace, target.LogNormalizer, curveTitle);
        return [densityPath, samplesPath, trainingPath];
    }
}
