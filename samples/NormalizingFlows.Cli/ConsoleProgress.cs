using System.Globalization;
using Microsoft.ML.NormalizingFlows.Training;

namespace NormalizingFlows.Cli;

/// <summary>
/// Prints a progress line every <see cref="CliOptions.PrintEvery"/> iterations (and at the end) and
/// forwards every report to an optional frame writer. The trainer may report more often than we print
/// (when frames need it); the printed ELBO is then the mean over all reports since the last line,
/// weighted by the iterations each covers, i.e. still the mean minibatch ELBO of the printed window.
/// </summary>
internal sealed class ConsoleProgress(TextWriter output, int printEvery, IProgress<TrainingProgress>? frames) : IProgress<TrainingProgress>
{
    private double weightedSum;
    private int weight, lastIteration;

    public void Report(TrainingProgress p)
    {
        int covered = p.Iteration - lastIteration;
        lastIteration = p.Iteration;
        if (double.IsFinite(p.Elbo)) { weightedSum += p.Elbo * covered; weight += covered; }
        frames?.Report(p);
        if (p.Iteration % printEvery != 0 && p.Iteration != p.Iterations) return;
        double elbo = weight > 0 ? weightedSum / weight : double.NaN;
        weightedSum = 0;
        weight = 0;
        var skipped = p.SkippedSteps > 0 ? $"  skipped {p.SkippedSteps}" : "";
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"iter {p.Iteration,7:N0}/{p.Iterations:N0}  ELBO {elbo,9:F4}  lr {p.LearningRate:0.###e+0}  elapsed {p.Elapsed.TotalSeconds,7:F1} s{skipped}"));
    }
}
