using ScottPlot;

namespace Microsoft.ML.NormalizingFlows.Plotting;

/// <summary>
/// Estimates with intervals beside a reference's, one column per item (e.g. MRP's states: the fit's poststratified
/// mean and 90 % interval next to NUTS's), items ordered by the reference mean.
/// </summary>
public static class IntervalComparisonPlot
{
    /// <summary>One item: its label, the reference's (mean, low, high) and the fit's.</summary>
    public readonly record struct Item(string Label, double ReferenceMean, double ReferenceLow, double ReferenceHigh, double Mean, double Low, double High);

    public static void Save(string path, IReadOnlyList<Item> items, string title, string referenceName, string fitName, string yLabel,
        string? xLabel = null, int width = 1400, int height = 600)
    {
        ArgumentNullException.ThrowIfNull(items);
        if (items.Count == 0) throw new ArgumentException("No items to draw.", nameof(items));
        PlotStyle.CheckOutput(path, width, height);
        var ordered = items.OrderBy(i => i.ReferenceMean).ToArray();
        var plot = new Plot();
        var reference = Colors.Black;
        var fitted = Colors.OrangeRed;
        for (int k = 0; k < ordered.Length; k++)
        {
            var it = ordered[k];
            var r = plot.Add.Line(k - 0.15, it.ReferenceLow, k - 0.15, it.ReferenceHigh);
            r.Color = reference;
            r.LineWidth = 2;
            var f = plot.Add.Line(k + 0.15, it.Low, k + 0.15, it.High);
            f.Color = fitted;
            f.LineWidth = 2;
        }
        var referenceMarkers = plot.Add.Markers(ordered.Select((_, k) => k - 0.15).ToArray(), ordered.Select(i => i.ReferenceMean).ToArray(), MarkerShape.FilledCircle, size: 5, color: reference);
        referenceMarkers.LegendText = referenceName;
        var fittedMarkers = plot.Add.Markers(ordered.Select((_, k) => k + 0.15).ToArray(), ordered.Select(i => i.Mean).ToArray(), MarkerShape.FilledSquare, size: 5, color: fitted);
        fittedMarkers.LegendText = fitName;
        plot.Axes.Bottom.SetTicks(Enumerable.Range(0, ordered.Length).Select(k => (double)k).ToArray(), ordered.Select(i => i.Label).ToArray());
        plot.Title(title, size: 14);
        plot.YLabel(yLabel);
        if (xLabel is not null) plot.XLabel(xLabel);
        plot.ShowLegend(Alignment.UpperLeft);
        plot.SavePng(path, width, height);
    }
}
