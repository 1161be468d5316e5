using ScottPlot;

namespace Microsoft.ML.NormalizingFlows.Plotting;

/// <summary>
/// The optimization curve. Minibatch ELBOs are noisy, so the trace is smoothed with a moving average;
/// with a known log Z the curve shows KL(q‖p) = log Z − ELBO on a log axis, where the slow late
/// progress is still visible (on a linear ELBO axis it looks flat).
/// </summary>
public static class TrainingCurvePlot
{
    /// <summary>Smallest KL drawn: smoothed noise can push log Z − ELBO to or below zero.</summary>
    public const double KlFloor = 1e-3;

    public static void Save(string path, IReadOnlyList<double> elboTrace, double? logNormalizer, string title,
        int width = 1000, int height = 600)
    {
        ArgumentNullException.ThrowIfNull(elboTrace);
        PlotStyle.CheckOutput(path, width, height);
        if (elboTrace.Count == 0) throw new ArgumentException("The ELBO trace is empty: nothing to plot.", nameof(elboTrace));
        int window = Math.Max(1, elboTrace.Count / 100);
        var smoothed = MovingAverage(elboTrace, window);
        var iterations = Enumerable.Range(1, smoothed.Length).Select(i => (double)i).ToArray();

        var plot = new Plot();
        plot.XLabel("iteration");
        if (logNormalizer is double logZ)
        {
            var logKl = smoothed.Select(e => double.IsNaN(e) ? double.NaN : Math.Log10(Math.Max(logZ - e, KlFloor))).ToArray();
            var line = plot.Add.ScatterLine(iterations, logKl);
            line.LegendText = $"KL = log Z − ELBO (log Z = {logZ:F4}), moving average of {window}";
            plot.YLabel("KL(q‖p) in nats (log scale)");
            plot.Axes.Left.TickGenerator = LogTicks(logKl);
        }
        else
        {
            var line = plot.Add.ScatterLine(iterations, smoothed);
            line.LegendText = $"minibatch ELBO, moving average of {window}";
            plot.YLabel("ELBO (nats)");
        }
        plot.Title(title, size: 14);
        plot.ShowLegend(Alignment.UpperRight);
        plot.SavePng(path, width, height);
    }

    /// <summary>
    /// Ticks for log10 data labelled in the original units at 1, 2, 5 × 10^k, so the axis reads in
    /// nats even when the curve spans less than one decade.
    /// </summary>
    private static ScottPlot.TickGenerators.NumericManual LogTicks(double[] log10Values)
    {
        var finite = log10Values.Where(double.IsFinite).ToArray();
        int low = (int)Math.Floor(finite.Length > 0 ? finite.Min() : 0);
        int high = (int)Math.Ceiling(finite.Length > 0 ? finite.Max() : 1);
        var ticks = new ScottPlot.TickGenerators.NumericManual();
        for (int k = low; k <= high; k++)
            foreach (var m in new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 })
            {
                double position = k + Math.Log10(m);
                if (m is 1 or 2 or 5)
                    ticks.AddMajor(position, (m * Math.Pow(10, k)).ToString("G3", System.Globalization.CultureInfo.InvariantCulture));
                else
                    ticks.AddMinor(position);
            }
        return ticks;
    }

    /// <summary>Trailing moving average that skips NaN (skipped steps) instead of spreading them.</summary>
    internal static double[] MovingAverage(IReadOnlyList<double> values, int window)
    {
        if (window <= 0) throw new ArgumentOutOfRangeException(nameof(window), window, "The window must be positive.");
        var result = new double[values.Count];
        double sum = 0;
        int count = 0;
        for (int i = 0; i < values.Count; i++)
        {
            if (!double.IsNaN(values[i])) { sum += values[i]; count++; }
            if (i >= window && !double.IsNaN(values[i - window])) { sum -= values[i - window]; count--; }
            result[i] = count > 0 ? sum / count : double.NaN;
        }
        return result;
    }
}
