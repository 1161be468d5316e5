namespace Microsoft.ML.NormalizingFlows.Diagnostics;

/// <summary>
/// The outcome of Pareto-smoothed importance sampling over S draws: normalized smoothed weights,
/// the tail shape k̂ and what it implies.
/// </summary>
public sealed class PsisResult
{
    internal PsisResult(double[] weights, double paretoK, int tailLength, int nonFiniteRatios)
    {
        Weights = weights;
        ParetoK = paretoK;
        TailLength = tailLength;
        NonFiniteRatios = nonFiniteRatios;
        EffectiveSampleSize = ImportanceWeights.EffectiveSampleSize(weights);
        KThreshold = ParetoSmoothing.KThreshold(weights.Length);
    }

    /// <summary>Normalized (sum to 1) Pareto-smoothed weights, one per draw; 0 for a draw whose ratio was not finite.</summary>
    public IReadOnlyList<double> Weights { get; }

    /// <summary>
    /// k̂, the estimated shape of the upper tail of the importance ratios (with the weakly informative prior).
    /// −∞ when the ratios have no tail (all of the largest ratios equal: q = p up to a constant); +∞ when
    /// the tail could not be fitted (too few finite ratios).
    /// </summary>
    public double ParetoK { get; }

    /// <summary>min(1 − 1/log10 S, 0.7): above it, the importance-sampling estimate is not reliable with S draws.</summary>
    public double KThreshold { get; }

    /// <summary>M, the number of largest ratios the generalized Pareto was fitted to (and smoothed).</summary>
    public int TailLength { get; }

    /// <summary>Draws whose log ratio was NaN or ±∞ (their weight is 0).</summary>
    public int NonFiniteRatios { get; }

    /// <summary>1 / Σ w̃², the effective sample size of the smoothed weights.</summary>
    public double EffectiveSampleSize { get; }

    /// <summary>k̂ ≤ the sample-size-aware threshold.</summary>
    public bool IsReliable => ParetoK <= KThreshold;

    /// <summary>The S needed for k̂ to pass: 10^(1/(1 − k̂)) for 0 &lt; k̂ &lt; 1; ∞ for k̂ ≥ 1.</summary>
    public double MinimumSampleSize => ParetoK >= 1 ? double.PositiveInfinity : ParetoK <= 0 ? 10 : Math.Pow(10, 1 / (1 - ParetoK));
}

/// <summary>
/// Pareto-smoothed importance sampling (PSIS; Vehtari, Simpson, Gelman, Yao &amp; Gabry, JMLR 2024).
/// Given log importance ratios log r_s = log p̃(z_s) − log q(z_s) of S draws z_s ~ q, the M =
/// ⌈min(0.2 S, 3 √S)⌉ largest ratios are replaced by the expected order statistics of a generalized
/// Pareto fitted to their exceedances over the (M+1)-th largest (Zhang–Stephens with the weakly
/// informative prior), capped at the largest raw ratio. The fitted shape k̂ diagnoses the approximation:
/// k̂ below min(1 − 1/log10 S, 0.7) means the (smoothed) importance-sampling estimate is reliable; in VI
/// (Yao et al. 2018) k̂ &lt; 0.5 means q itself is close to p.
/// </summary>
public static class ParetoSmoothing
{
    /// <summary>Fewest finite ratios in the tail for a fit; below it k̂ = +∞ (not diagnosable).</summary>
    private const int MinimumTail = 5;

    /// <summary>min(1 − 1/log10 S, 0.7).</summary>
    public static double KThreshold(int sampleSize)
    {
        if (sampleSize <= 1) throw new ArgumentOutOfRangeException(nameof(sampleSize), sampleSize, "Need at least 2 draws.");
        return Math.Min(1 - 1 / Math.Log10(sampleSize), 0.7);
    }

    /// <summary>M = ⌈min(0.2 S, 3 √S)⌉.</summary>
    public static int TailLength(int sampleSize) => (int)Math.Ceiling(Math.Min(0.2 * sampleSize, 3 * Math.Sqrt(sampleSize)));

    /// <summary>
    /// Smooths log importance ratios. NaN and ±∞ ratios (e.g. a target that returned NaN) get weight 0
    /// and are counted; the tail fit uses the finite ones.
    /// </summary>
    public static PsisResult Smooth(IReadOnlyList<double> logRatios)
    {
        ArgumentNullException.ThrowIfNull(logRatios);
        int total = logRatios.Count;
        if (total < 2) throw new ArgumentException("PSIS needs at least 2 log ratios.", nameof(logRatios));
        var finite = new List<int>(total);
        double max = double.NegativeInfinity;
        for (int i = 0; i < total; i++)
        {
            double v = logRatios[i];
            if (double.IsFinite(v)) { finite.Add(i); if (v > max) max = v; }
        }
        int nonFinite = total - finite.Count;
        var logWeights = new double[total];
        Array.Fill(logWeights, double.NegativeInfinity);
        if (finite.Count == 0) return new PsisResult(new double[total], double.PositiveInfinity, 0, nonFinite);
        foreach (var i in finite) logWeights[i] = logRatios[i] - max; // shift: the largest raw weight is exp(0) = 1

        int s = finite.Count;
        int m = TailLength(s);
        double k;
        if (m < MinimumTail || s <= m)
            k = double.PositiveInfinity;
        else
        {
            var order = finite.OrderBy(i => logWeights[i]).ToArray(); // ascending
            double logCutoff = logWeights[order[s - m - 1]];
            // Exceedances in units of the cutoff, exp(log w − log cutoff) − 1: the fitted shape k is scale-free,
            // and this scale cannot underflow. Scaled by the largest weight instead, a q much wider than p
            // (log ratios spread over millions of nats) sent all but one exceedance to exactly 0 and k̂ to NaN
            // or a meaningless small value.
            var exceedances = new double[m];
            for (int j = 0; j < m; j++) exceedances[j] = double.ExpM1(logWeights[order[s - m + j]] - logCutoff);
            if (!(exceedances[m - 1] > 0))
                k = double.NegativeInfinity; // the tail is flat: nothing to smooth
            else if (double.IsPositiveInfinity(exceedances[m - 1]))
                k = double.PositiveInfinity; // the largest ratio exceeds the cutoff by more than e^709: one draw carries everything
            else
            {
                var (shape, scale) = GeneralizedPareto.Fit(exceedances);
                k = double.IsNaN(shape) ? double.PositiveInfinity : shape; // no usable fit: as undiagnosable as too few draws
                if (double.IsFinite(k))
                    for (int j = 0; j < m; j++)
                    {
                        double smoothed = logCutoff + Math.Log(1 + GeneralizedPareto.Quantile((j + 0.5) / m, shape, scale));
                        logWeights[order[s - m + j]] = Math.Min(smoothed, 0); // never above the largest raw ratio
                    }
            }
        }
        return new PsisResult(ImportanceWeights.Normalize(logWeights), k, m, nonFinite);
    }
}
