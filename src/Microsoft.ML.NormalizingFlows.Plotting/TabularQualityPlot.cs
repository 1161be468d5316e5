using Microsoft.ML.NormalizingFlows.Tabular;
using ScottPlot;

namespace Microsoft.ML.NormalizingFlows.Plotting;

/// <summary>
/// One panel per column, real against synthetic: numeric columns as two histograms (densities over the real data's
/// 0.5–99.5 % range, so a few outliers do not flatten the picture), categorical columns as level shares. Each
/// panel's title carries the KS or TV distance, so the picture and the quality report agree.
/// </summary>
public static class TabularQualityPlot
{
    public static void Save(IDataView real, IDataView synthetic, IReadOnlyList<string> columns, string path, string title, int width = 1600, int height = 900)
    {
        ArgumentNullException.ThrowIfNull(real);
        ArgumentNullException.ThrowIfNull(synthetic);
        ArgumentNullException.ThrowIfNull(columns);
        if (columns.Count == 0) throw new ArgumentException("At least one column is needed.", nameof(columns));
        PlotStyle.CheckOutput(path, width, height);
        int panelColumns = (int)Math.Ceiling(Math.Sqrt(columns.Count * 16.0 / 9)), panelRows = (columns.Count + panelColumns - 1) / panelColumns;
        var multiplot = new Multiplot();
        multiplot.AddPlots(panelRows * panelColumns);
        multiplot.Layout = new ScottPlot.MultiplotLayouts.Grid(panelRows, panelColumns);
        var realColumns = TabularQuality.ReadColumns(real, columns);
        var syntheticColumns = TabularQuality.ReadColumns(synthetic, columns);
        for (int k = 0; k < columns.Count; k++)
        {
            var plot = multiplot.GetPlot(k);
            var (realNumbers, realLevels) = realColumns[k];
            var (synthNumbers, synthLevels) = syntheticColumns[k];
            if (realNumbers is not null && synthNumbers is not null) Histograms(plot, columns[k], realNumbers, synthNumbers);
            else Shares(plot, columns[k], realLevels!, synthLevels!);
        }
        multiplot.GetPlot(0).Title($"{title}\n{multiplot.GetPlot(0).Axes.Title.Label.Text}");
        multiplot.SavePng(path, width, height);
    }

    private static void Histograms(Plot plot, string name, double[] real, double[] synthetic)
    {
        var present = real.Where(double.IsFinite).OrderBy(v => v).ToArray();
        double lo = present[(int)(0.005 * (present.Length - 1))], hi = present[(int)(0.995 * (present.Length - 1))];
        if (hi <= lo) hi = lo + 1;
        const int bins = 40;
        double[] centers = Enumerable.Range(0, bins).Select(b => lo + (b + 0.5) * (hi - lo) / bins).ToArray();
        double[] Density(double[] values)
        {
            var counts = new double[bins];
            int n = 0;
            foreach (var v in values.Where(double.IsFinite))
            {
                n++;
                int b = (int)Math.Floor((v - lo) / (hi - lo) * bins);
                if (b >= 0 && b < bins) counts[b]++;
            }
            return counts.Select(c => c / Math.Max(1, n) / ((hi - lo) / bins)).ToArray();
        }
        var r = plot.Add.ScatterLine(centers, Density(real), Colors.Black);
        r.LegendText = "real";
        r.LineWidth = 2;
        var s = plot.Add.ScatterLine(centers, Density(synthetic), Colors.OrangeRed);
        s.LegendText = "synthetic";
        s.LineWidth = 2;
        s.LinePattern = LinePattern.Dashed;
        plot.ShowLegend(Alignment.UpperRight);
        plot.Title($"{name}: KS {TabularQuality.KolmogorovSmirnov(real.Where(v => !double.IsNaN(v)).ToArray(), synthetic.Where(v => !double.IsNaN(v)).ToArray()):F3}");
    }

    private static void Shares(Plot plot, string name, string[] real, string[] synthetic)
    {
        var levels = real.Concat(synthetic).Distinct().ToArray();
        double[] Share(string[] values) => levels.Select(l => values.Count(v => v == l) / (double)Math.Max(1, values.Length)).ToArray();
        var positions = Enumerable.Range(0, levels.Length).Select(i => (double)i).ToArray();
        var r = plot.Add.Bars(positions.Select(p => p - 0.2).ToArray(), Share(real));
        r.LegendText = "real";
        r.Color = Colors.Black;
        foreach (var bar in r.Bars) bar.Size = 0.4;
        var s = plot.Add.Bars(positions.Select(p => p + 0.2).ToArray(), Share(synthetic));
        s.LegendText = "synthetic";
        s.Color = Colors.OrangeRed;
        foreach (var bar in s.Bars) bar.Size = 0.4;
        plot.Axes.Bottom.SetTicks(positions, levels.Select(l => l.Length == 0 ? "(empty)" : l).ToArray());
        plot.ShowLegend(Alignment.UpperRight);
        plot.Title($"{name}: TV {TabularQuality.TotalVariation(real, synthetic):F3}");
    }
}
