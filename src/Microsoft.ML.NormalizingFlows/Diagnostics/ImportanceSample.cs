using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Diagnostics;

/// <summary>
/// S draws z_s ~ q with log p̃(z_s) and log q(z_s) copied to doubles, their PSIS smoothing, and the
/// estimates built on them. Works for any <see cref="FlowDistribution"/> (a flow, or a mean-field /
/// full-rank Gaussian), since log q comes from the sampling pass.
/// <para>
/// A draw where the target returned NaN or ±∞ (or log q was not finite) gets weight 0 and is counted in
/// <see cref="NonFiniteDraws"/>; the ELBO is then taken over the finite draws only, and the fit report
/// flags it.
/// </para>
/// </summary>
public sealed class ImportanceSample
{
    private readonly double[] points; // row-major [S, d]
    private PsisResult? psis;

    private ImportanceSample(double[] points, int dimension, double[] logTarget, double[] logQ)
    {
        this.points = points;
        Dimension = dimension;
        LogTarget = logTarget;
        LogQ = logQ;
        var logRatios = new double[logQ.Length];
        for (int i = 0; i < logRatios.Length; i++)
        {
            double r = logTarget[i] - logQ[i];
            logRatios[i] = double.IsFinite(r) ? r : double.NaN;
            if (!double.IsFinite(r)) NonFiniteDraws++;
        }
        LogRatios = logRatios;
    }

    public int Count => LogQ.Count;
    public int Dimension { get; }
    public IReadOnlyList<double> LogTarget { get; }
    public IReadOnlyList<double> LogQ { get; }

    /// <summary>log p̃ − log q per draw (NaN where either was not finite).</summary>
    public IReadOnlyList<double> LogRatios { get; }

    /// <summary>Draws whose log ratio was not finite (weight 0 everywhere below).</summary>
    public int NonFiniteDraws { get; }

    /// <summary>The PSIS smoothing of the log ratios (computed once, on first use).</summary>
    public PsisResult Psis => psis ??= ParetoSmoothing.Smooth(LogRatios);

    /// <summary>Draw s as a new array of length d.</summary>
    public double[] Point(int s) => points.AsSpan(s * Dimension, Dimension).ToArray();

    /// <summary>Component j of draw s.</summary>
    public double this[int s, int j] => points[s * Dimension + j];

    /// <summary>Draws S points from q (no gradients, <paramref name="blockSize"/> at a time) and evaluates the target on them.</summary>
    public static ImportanceSample Draw(FlowDistribution q, Target target, int samples = 10_000, long seed = 20_240_101, int blockSize = Training.Evaluation.DefaultBlockSize)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(target);
        if (samples < 10) throw new ArgumentOutOfRangeException(nameof(samples), samples, "Importance diagnostics need at least 10 draws.");
        if (q.Dimension != target.Dimension)
            throw new ArgumentException($"The flow has dimension {q.Dimension} but target '{target.Name}' has dimension {target.Dimension}.", nameof(target));
        int d = q.Dimension;
        var points = new double[(long)samples * d];
        var logTarget = new double[samples];
        var logQ = new double[samples];
        int done = 0;
        foreach (var (z, lp, lq) in Training.Evaluation.DrawBlocks(q, target, samples, seed, blockSize))
        {
            int n = (int)z.shape[0];
            z.to(ScalarType.Float64).cpu().data<double>().CopyTo(points.AsSpan(done * d, n * d));
            lp.to(ScalarType.Float64).cpu().data<double>().CopyTo(logTarget.AsSpan(done, n));
            lq.to(ScalarType.Float64).cpu().data<double>().CopyTo(logQ.AsSpan(done, n));
            done += n;
        }
        return new ImportanceSample(points, d, logTarget, logQ);
    }

    /// <summary>Builds a sample from given draws (row-major points [S·d]) and their log densities.</summary>
    public static ImportanceSample FromDraws(double[] points, int dimension, double[] logTarget, double[] logQ)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentNullException.ThrowIfNull(logTarget);
        ArgumentNullException.ThrowIfNull(logQ);
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The dimension must be positive.");
        if (logTarget.Length != logQ.Length || points.Length != (long)logQ.Length * dimension)
            throw new ArgumentException($"Inconsistent lengths: {points.Length} coordinates, {logTarget.Length} log p̃, {logQ.Length} log q for dimension {dimension}.");
        return new ImportanceSample((double[])points.Clone(), dimension, (double[])logTarget.Clone(), (double[])logQ.Clone());
    }

    /// <summary>The ELBO E_q[log p̃ − log q] over the finite draws, with its standard error.</summary>
    public WeightedEstimate Elbo()
    {
        double sum = 0, sumSquares = 0;
        int n = 0;
        foreach (var r in LogRatios)
        {
            if (double.IsNaN(r)) continue;
            sum += r;
            sumSquares += r * r;
            n++;
        }
        if (n < 2) return new WeightedEstimate(double.NaN, double.NaN);
        double mean = sum / n;
        return new WeightedEstimate(mean, Math.Sqrt(Math.Max(0, (sumSquares - n * mean * mean) / (n - 1)) / n));
    }

    /// <summary>The importance-sampling estimate of log Z, log((1/S) Σ r_s) (an IW-ELBO with M = S; NaN draws count as 0).</summary>
    public double LogNormalizerEstimate()
    {
        double max = double.NegativeInfinity;
        foreach (var r in LogRatios) if (r > max) max = r;
        if (double.IsNegativeInfinity(max)) return double.NaN;
        double sum = 0;
        foreach (var r in LogRatios) if (!double.IsNaN(r)) sum += Math.Exp(r - max);
        return max + Math.Log(sum / Count);
    }

    /// <summary>E[h(z)] under p: PSIS-weighted (default) or raw q (smoothed = false, plain average over q), with MCSE.</summary>
    public WeightedEstimate Expectation(Func<double[], double> h, bool reweighted = true)
    {
        ArgumentNullException.ThrowIfNull(h);
        var values = new double[Count];
        for (int s = 0; s < Count; s++) values[s] = h(Point(s));
        IReadOnlyList<double> weights = reweighted ? Psis.Weights : Uniform(Count);
        return ImportanceWeights.Expectation(weights, values);
    }

    /// <summary>Resamples draws in proportion to the PSIS weights: an approximately unweighted sample from p, [count][d].</summary>
    public double[][] Resample(int count, int seed = 0) =>
        ImportanceWeights.Resample(Psis.Weights, count, new Random(seed)).Select(Point).ToArray();

    private static double[] Uniform(int n)
    {
        var w = new double[n];
        Array.Fill(w, 1.0 / n);
        return w;
    }
}
