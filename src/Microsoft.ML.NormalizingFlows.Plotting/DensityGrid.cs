using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Plotting;

/// <summary>
/// A density evaluated on a regular grid of cell centers over a box. Values[row, col] with row 0 at the
/// TOP (largest z₂), the orientation heatmaps draw, so no flipping happens anywhere else.
/// </summary>
/// <param name="Values">Density values (normalized unless <paramref name="Method"/> says otherwise).</param>
/// <param name="Box">The z-space rectangle the grid covers.</param>
/// <param name="Method">How the values were obtained, for plot titles ("exact", "histogram of N draws", ...).</param>
public sealed record DensityGrid(double[,] Values, Box Box, string Method)
{
    public int Rows => Values.GetLength(0);
    public int Columns => Values.GetLength(1);

    public double Max
    {
        get
        {
            double m = 0;
            foreach (var v in Values) if (double.IsFinite(v) && v > m) m = v;
            return m;
        }
    }

    /// <summary>
    /// The target's density exp(log p̃ − log Z) on an n × n grid. Without a known log Z the grid is
    /// normalized numerically (sum × cell area = 1 over the box) so both panels share one color scale.
    /// </summary>
    public static DensityGrid ForTarget(Target target, Box box, int resolution = 200)
    {
        ArgumentNullException.ThrowIfNull(target);
        CheckArguments(target.Dimension, box, resolution);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var logP = target.Evaluate(CellCenters(box, resolution, ScalarType.Float64, torch.CPU));
        string method;
        if (target.LogNormalizer is double logZ)
        {
            logP = logP - logZ;
            method = "exact, log Z by quadrature";
        }
        else
        {
            // Normalize over the box in log space (stable for peaked densities).
            double cellArea = box.Width * box.Height / ((double)resolution * resolution);
            logP = logP - (torch.logsumexp(logP, 0) + Math.Log(cellArea));
            method = "normalized over the box";
        }
        return new DensityGrid(ToRows(logP.exp(), resolution), box, method);
    }

    /// <summary>
    /// The flow's density on the same grid: exp(log q) where q can evaluate it at given points; otherwise a
    /// 2-D histogram of <paramref name="samples"/> draws (count / (N × cell area)) on a coarser grid.
    /// </summary>
    public static DensityGrid ForFlow(FlowDistribution q, Box box, int resolution = 200, int samples = 200_000, long seed = 1)
    {
        ArgumentNullException.ThrowIfNull(q);
        CheckArguments(q.Dimension, box, resolution);
        if (samples <= 0) throw new ArgumentOutOfRangeException(nameof(samples), samples, "The number of draws must be positive.");
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var (dtype, device) = q.Placement;
        if (q.CanEvaluateLogProb)
        {
            var logQ = q.LogProb(CellCenters(box, resolution, dtype, device));
            return new DensityGrid(ToRows(logQ.exp(), resolution), box, "exact log q");
        }
        // About 20 draws per cell on average (at most the grid resolution), so the picture is not all noise.
        int bins = Math.Clamp((int)Math.Sqrt(samples / 20.0), 10, resolution);
        var generator = new Generator((ulong)seed, device);
        var (z, _) = q.Sample(samples, generator);
        return Histogram(z.to(ScalarType.Float64).cpu(), box, bins, $"histogram of {samples:N0} draws");
    }

    /// <summary>Normalized 2-D histogram of points [N, 2] (density units: count / (N × cell area)).</summary>
    internal static DensityGrid Histogram(Tensor points, Box box, int bins, string method)
    {
        var data = points.data<double>().ToArray();
        int n = data.Length / 2;
        var counts = new double[bins, bins];
        double cellArea = box.Width * box.Height / ((double)bins * bins);
        for (int i = 0; i < n; i++)
        {
            double x = data[2 * i], y = data[2 * i + 1];
            int col = (int)Math.Floor((x - box.MinX) / box.Width * bins);
            int row = (int)Math.Floor((box.MaxY - y) / box.Height * bins);
            if (col < 0 || col >= bins || row < 0 || row >= bins) continue;
            counts[row, col] += 1.0 / (n * cellArea);
        }
        return new DensityGrid(counts, box, method);
    }

    /// <summary>Cell centers [n·n, 2], row-major with the first row at the top of the box.</summary>
    internal static Tensor CellCenters(Box box, int n, ScalarType dtype, Device device)
    {
        double hx = box.Width / n, hy = box.Height / n;
        var xs = torch.linspace(box.MinX + hx / 2, box.MaxX - hx / 2, n, dtype: ScalarType.Float64);
        var ys = torch.linspace(box.MaxY - hy / 2, box.MinY + hy / 2, n, dtype: ScalarType.Float64);
        return torch.stack(new[] { xs.repeat(n), ys.repeat_interleave(n) }, 1).to(dtype, device);
    }

    private static double[,] ToRows(Tensor values, int n)
    {
        var flat = values.to(ScalarType.Float64).cpu().data<double>().ToArray();
        var grid = new double[n, n];
        for (int r = 0; r < n; r++)
            for (int c = 0; c < n; c++)
                grid[r, c] = flat[r * n + c];
        return grid;
    }

    private static void CheckArguments(int dimension, Box box, int resolution)
    {
        if (dimension != 2) throw new ArgumentException($"Density pictures need a 2-D distribution; this one has dimension {dimension}.");
        if (!(box.Width > 0) || !(box.Height > 0)) throw new ArgumentException($"The plot box must have positive width and height; got {box}.", nameof(box));
        if (resolution < 2) throw new ArgumentOutOfRangeException(nameof(resolution), resolution, "The grid needs at least 2 cells per axis.");
    }
}
