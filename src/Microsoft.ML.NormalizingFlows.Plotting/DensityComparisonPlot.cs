using ScottPlot;

namespace Microsoft.ML.NormalizingFlows.Plotting;

/// <summary>
/// True density beside the fitted one, on the same grid and the same color scale (the seeds drew them
/// with different color maps and ranges, which hides how far apart they are).
/// </summary>
public static class DensityComparisonPlot
{
    public static void Save(string path, DensityGrid truth, DensityGrid fitted, string targetTitle, string flowTitle,
        int width = 1400, int height = 640)
    {
        ArgumentNullException.ThrowIfNull(truth);
        ArgumentNullException.ThrowIfNull(fitted);
        PlotStyle.CheckOutput(path, width, height);
        if (truth.Box != fitted.Box) throw new ArgumentException($"Both grids must cover the same box; got {truth.Box} and {fitted.Box}.", nameof(fitted));
        // One range for both panels, set by the true density's peak; a q that is more peaked saturates
        // and the title says so (scaling to q's peak would instead fade the target into the background).
        double max = truth.Max;
        bool clipped = fitted.Max > 1.05 * max;

        var multiplot = new Multiplot();
        multiplot.AddPlots(2);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Columns();
        var left = multiplot.GetPlot(0);
        var right = multiplot.GetPlot(1);

        // A color bar on each panel keeps the two panels the same size (and both readable alone).
        left.Add.ColorBar(PlotStyle.AddDensity(left, truth, max));
        PlotStyle.FrameZSpace(left, truth.Box, $"True density p(z): {targetTitle}\n({truth.Method})");

        right.Add.ColorBar(PlotStyle.AddDensity(right, fitted, max));
        var note = clipped ? $"; peak {fitted.Max:G3} clipped to the same scale" : "; same color scale";
        PlotStyle.FrameZSpace(right, fitted.Box, $"Fitted density q(z): {flowTitle}\n({fitted.Method}{note})");

        multiplot.SavePng(path, width, height);
    }
}
