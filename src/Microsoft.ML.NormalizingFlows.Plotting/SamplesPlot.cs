using Microsoft.ML.NormalizingFlows.Distributions;
using ScottPlot;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Plotting;

/// <summary>
/// Draws from q over a faint picture of the true density: where the dots leave the bright region, q
/// puts mass the target does not have (the seed scattered samples on a blank canvas).
/// </summary>
public static class SamplesPlot
{
    public static void Save(string path, double[] xs, double[] ys, DensityGrid background, string title,
        int width = 800, int height = 800)
    {
        ArgumentNullException.ThrowIfNull(xs);
        ArgumentNullException.ThrowIfNull(ys);
        ArgumentNullException.ThrowIfNull(background);
        if (xs.Length != ys.Length) throw new ArgumentException($"xs has {xs.Length} values but ys has {ys.Length}.", nameof(ys));
        PlotStyle.CheckOutput(path, width, height);
        var plot = Build(xs, ys, background, title);
        plot.SavePng(path, width, height);
    }

    /// <summary>Draws <paramref name="count"/> samples from q (no gradients) as two coordinate arrays.</summary>
    public static (double[] Xs, double[] Ys) Draw(FlowDistribution q, int count, long seed)
    {
        ArgumentNullException.ThrowIfNull(q);
        if (q.Dimension != 2) throw new ArgumentException($"Sample pictures need a 2-D flow; this one has dimension {q.Dimension}.", nameof(q));
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "The number of draws must be positive.");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var generator = new Generator((ulong)seed, q.Placement.Device);
        var (z, _) = q.Sample(count, generator);
        var flat = z.to(ScalarType.Float64).cpu().data<double>().ToArray();
        var xs = new double[count];
        var ys = new double[count];
        for (int i = 0; i < count; i++) { xs[i] = flat[2 * i]; ys[i] = flat[2 * i + 1]; }
        return (xs, ys);
    }

    internal static Plot Build(double[] xs, double[] ys, DensityGrid background, string title)
    {
        var plot = new Plot();
        var heatmap = PlotStyle.AddDensity(plot, background, background.Max);
        heatmap.Opacity = 0.55; // faint, so the dots stay the subject
        var markers = plot.Add.Markers(xs, ys, MarkerShape.FilledCircle, size: 3, color: Colors.OrangeRed.WithAlpha(0.6));
        markers.LegendText = $"{xs.Length:N0} draws from q";
        plot.ShowLegend(Alignment.UpperRight);
        PlotStyle.FrameZSpace(plot, background.Box, title);
        return plot;
    }
}
