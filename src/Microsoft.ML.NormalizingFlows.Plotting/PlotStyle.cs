using Box = Microsoft.ML.NormalizingFlows.Targets.Box;
using ScottPlot;

namespace Microsoft.ML.NormalizingFlows.Plotting;

/// <summary>The look every z-space panel shares, so pictures of different runs compare at a glance.</summary>
internal static class PlotStyle
{
    /// <summary>One color map for every density panel: comparisons only mean something on one scale.</summary>
    public static IColormap DensityColormap => new ScottPlot.Colormaps.Viridis();

    /// <summary>Titles, axis labels z₁/z₂, the box as the view, and equal units (a circle must look round).</summary>
    public static void FrameZSpace(Plot plot, Box box, string title)
    {
        plot.Title(title, size: 14);
        plot.XLabel("z₁");
        plot.YLabel("z₂");
        plot.Axes.SetLimits(box.MinX, box.MaxX, box.MinY, box.MaxY);
        plot.Axes.SquareUnits();
    }

    /// <summary>Adds a density grid as a heatmap on a fixed range [0, max] so two panels share colors.</summary>
    public static ScottPlot.Plottables.Heatmap AddDensity(Plot plot, DensityGrid grid, double max)
    {
        var heatmap = plot.Add.Heatmap(grid.Values);
        heatmap.Colormap = DensityColormap;
        heatmap.ManualRange = new ScottPlot.Range(0, max > 0 ? max : 1);
        heatmap.Rectangle = new CoordinateRect(grid.Box.MinX, grid.Box.MaxX, grid.Box.MinY, grid.Box.MaxY);
        return heatmap;
    }

    /// <summary>Checks and creates what a PNG writer needs, with errors that name the argument.</summary>
    public static void CheckOutput(string path, int width, int height)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("An output path is required.", nameof(path));
        if (width < 100 || height < 100) throw new ArgumentOutOfRangeException(nameof(width), $"{width}×{height}", "Pictures must be at least 100×100 pixels.");
        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory)) Directory.CreateDirectory(directory);
    }
}
