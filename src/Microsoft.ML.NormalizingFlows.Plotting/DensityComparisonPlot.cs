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
        // One range for both panels; the true density's peak sets it so an overshooting q is visible as saturation.
        double max = truth.Max;

        var multiplot = new Multiplot();
        multiplot.AddPlots(2);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Columns();
        var left = multiplot.GetPlot(0);
        var right = multiplot.GetPlot(1);

        PlotStyle.AddDensity(left, truth, max);
        PlotStyle.FrameZSpace(left, truth.Box, $"True density p(z): {targetTitle}\n({truth.Method})");

        var heatmap = PlotStyle.AddDensity(right, fitted, max);
        PlotStyle.FrameZSpace(right, fitted.Box, $"Fitted q(z): {flowTitle}\n({fitted.Method})");
        var colorBar = right.Add.ColorBar(heatmap);
        colorBar.Label = "density (same scale both panels)";

        multiplot.SavePng(path, width, height);
    }
}
