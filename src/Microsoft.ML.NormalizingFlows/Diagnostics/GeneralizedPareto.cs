namespace Microsoft.ML.NormalizingFlows.Diagnostics;

/// <summary>
/// The generalized Pareto distribution GPD(k, σ) on x ≥ 0 (location 0): F(x) = 1 − (1 + k x/σ)^(−1/k),
/// and its fit to exceedances by the Zhang &amp; Stephens (2009) estimator, as used by PSIS
/// (Vehtari, Simpson, Gelman, Yao &amp; Gabry). Pure double arithmetic; no tensors.
/// </summary>
public static class GeneralizedPareto
{
    /// <summary>Prior weight of the grid of the Zhang–Stephens estimator.</summary>
    private const double GridPrior = 3;

    /// <summary>Minimum number of grid points (plus ⌊√n⌋).</summary>
    private const int MinimumGridPoints = 30;

    /// <summary>The weakly informative prior on k: as if <see cref="PriorSize"/> extra observations had k = 0.5.</summary>
    private const double PriorSize = 10, PriorShape = 0.5;

    /// <summary>
    /// Fits (k, σ) to exceedances x (all ≥ 0, at least 2 and not all equal) by the Zhang &amp; Stephens
    /// estimator: a posterior-mean over a grid of θ = −k/σ of the profile likelihood. With
    /// <paramref name="weaklyInformativePrior"/> k is then shrunk toward 0.5 as (n k + 10·0.5)/(n + 10),
    /// as PSIS does (σ keeps the unshrunk value, as in the reference implementation). Returns (NaN, NaN)
    /// when no grid point has a finite profile likelihood (exceedances that no GPD describes).
    /// </summary>
    public static (double Shape, double Scale) Fit(IReadOnlyList<double> exceedances, bool weaklyInformativePrior = true)
    {
        ArgumentNullException.ThrowIfNull(exceedances);
        int n = exceedances.Count;
        if (n < 2) throw new ArgumentException("Fitting a generalized Pareto needs at least 2 exceedances.", nameof(exceedances));
        var x = new double[n];
        for (int i = 0; i < n; i++)
        {
            double v = exceedances[i];
            if (!double.IsFinite(v) || v < 0)
                throw new ArgumentException($"Exceedances must be finite and non-negative; element {i} is {v}.", nameof(exceedances));
            x[i] = v;
        }
        Array.Sort(x);
        double largest = x[n - 1];
        if (!(largest > x[0]))
            throw new ArgumentException("All exceedances are equal: there is no tail to fit.", nameof(exceedances));

        int m = MinimumGridPoints + (int)Math.Floor(Math.Sqrt(n));
        double firstQuartile = x[Math.Max(0, (int)Math.Floor(n / 4.0 + 0.5) - 1)];
        if (!(firstQuartile > 0)) firstQuartile = FirstPositive(x); // ties at zero: any positive scale will do for the grid
        var theta = new double[m];
        var logLikelihood = new double[m];
        for (int j = 0; j < m; j++)
        {
            theta[j] = 1 / largest + (1 - Math.Sqrt(m / (j + 0.5))) / (GridPrior * firstQuartile);
            logLikelihood[j] = n * ProfileLogLikelihood(theta[j], x);
        }
        double max = double.NegativeInfinity;
        foreach (var l in logLikelihood) if (l > max) max = l;
        double weightSum = 0, thetaHat = 0;
        for (int j = 0; j < m; j++)
        {
            double w = double.IsFinite(logLikelihood[j]) ? Math.Exp(logLikelihood[j] - max) : 0;
            weightSum += w;
            thetaHat += w * theta[j];
        }
        if (!(weightSum > 0)) return (double.NaN, double.NaN); // no grid point had a finite likelihood: no fit
        thetaHat /= weightSum;
        double k = MeanLog1p(-thetaHat, x);
        double sigma = -k / thetaHat;
        if (weaklyInformativePrior) k = (n * k + PriorSize * PriorShape) / (n + PriorSize);
        return (k, sigma);
    }

    /// <summary>The p-quantile of GPD(k, σ): σ/k ((1 − p)^(−k) − 1), or −σ log(1 − p) when k = 0.</summary>
    public static double Quantile(double p, double shape, double scale)
    {
        if (!(p >= 0 && p < 1)) throw new ArgumentOutOfRangeException(nameof(p), p, "p must lie in [0, 1).");
        if (!(scale > 0)) throw new ArgumentOutOfRangeException(nameof(scale), scale, "The scale must be positive.");
        return Math.Abs(shape) < 1e-12 ? -scale * Math.Log(1 - p) : scale / shape * double.ExpM1(-shape * Math.Log(1 - p));
    }

    /// <summary>n independent draws from GPD(k, σ) by the inverse CDF (for tests and simulations).</summary>
    public static double[] Sample(int count, double shape, double scale, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "The number of draws must be positive.");
        var draws = new double[count];
        for (int i = 0; i < count; i++) draws[i] = Quantile(random.NextDouble(), shape, scale);
        return draws;
    }

    /// <summary>Profile log likelihood per observation at θ: log(−θ/k) − k − 1 with k = mean log(1 − θ x).</summary>
    private static double ProfileLogLikelihood(double theta, double[] x)
    {
        double k = MeanLog1p(-theta, x);
        double ratio = -theta / k;
        return ratio > 0 ? Math.Log(ratio) - k - 1 : double.NegativeInfinity;
    }

    private static double MeanLog1p(double a, double[] x)
    {
        double sum = 0;
        foreach (var v in x) sum += LogOnePlus(a * v);
        return sum / x.Length;
    }

    /// <summary>log(1 + y), accurate for small y.</summary>
    private static double LogOnePlus(double y) => Math.Abs(y) < 1e-4 ? y - y * y / 2 + y * y * y / 3 : Math.Log(1 + y);

    private static double FirstPositive(double[] sorted)
    {
        foreach (var v in sorted) if (v > 0) return v;
        return 1;
    }
}
