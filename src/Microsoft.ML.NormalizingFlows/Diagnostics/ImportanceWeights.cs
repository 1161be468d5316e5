namespace Microsoft.ML.NormalizingFlows.Diagnostics;

/// <summary>A self-normalized importance-sampling estimate with its Monte Carlo standard error.</summary>
public readonly record struct WeightedEstimate(double Mean, double StandardError)
{
    public override string ToString() => $"{Mean:G5} ± {StandardError:G3}";
}

/// <summary>
/// Self-normalized importance sampling with given (e.g. Pareto-smoothed) weights: normalization,
/// effective sample size, expectations with Monte Carlo standard errors, and resampling. Pure double maths.
/// </summary>
public static class ImportanceWeights
{
    /// <summary>exp(log w − logsumexp(log w)): weights that sum to 1 (−∞ and NaN become 0).</summary>
    public static double[] Normalize(IReadOnlyList<double> logWeights)
    {
        ArgumentNullException.ThrowIfNull(logWeights);
        double max = double.NegativeInfinity;
        foreach (var v in logWeights) if (double.IsFinite(v) && v > max) max = v;
        var w = new double[logWeights.Count];
        if (double.IsNegativeInfinity(max)) return w;
        double sum = 0;
        for (int i = 0; i < w.Length; i++)
        {
            double v = logWeights[i];
            w[i] = double.IsFinite(v) ? Math.Exp(v - max) : 0;
            sum += w[i];
        }
        for (int i = 0; i < w.Length; i++) w[i] /= sum;
        return w;
    }

    /// <summary>(Σ w)² / Σ w²: the effective sample size of importance weights (S for equal weights).</summary>
    public static double EffectiveSampleSize(IReadOnlyList<double> weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        double sum = 0, sumSquares = 0;
        foreach (var w in weights)
        {
            if (!(w >= 0) || double.IsInfinity(w)) throw new ArgumentException("Weights must be finite and non-negative.", nameof(weights));
            sum += w;
            sumSquares += w * w;
        }
        return sumSquares > 0 ? sum * sum / sumSquares : 0;
    }

    /// <summary>
    /// Σ w̃_s h_s with normalized weights w̃, and its Monte Carlo standard error by the delta method,
    /// √(Σ w̃_s² (h_s − mean)²). Draws with weight 0 are ignored (their h may be anything, even NaN).
    /// </summary>
    public static WeightedEstimate Expectation(IReadOnlyList<double> weights, IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(values);
        if (weights.Count != values.Count)
            throw new ArgumentException($"{weights.Count} weights but {values.Count} values.", nameof(values));
        double sum = 0, mean = 0;
        for (int i = 0; i < weights.Count; i++)
        {
            if (weights[i] == 0) continue;
            sum += weights[i];
            mean += weights[i] * values[i];
        }
        if (!(sum > 0)) throw new ArgumentException("All weights are zero.", nameof(weights));
        mean /= sum;
        double variance = 0;
        for (int i = 0; i < weights.Count; i++)
        {
            if (weights[i] == 0) continue;
            double wi = weights[i] / sum, d = values[i] - mean;
            variance += wi * wi * d * d;
        }
        return new WeightedEstimate(mean, Math.Sqrt(variance));
    }

    /// <summary>
    /// Indices of <paramref name="count"/> draws resampled in proportion to the weights (multinomial, with
    /// replacement): an approximately unweighted sample from the target.
    /// </summary>
    public static int[] Resample(IReadOnlyList<double> weights, int count, Random random)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(random);
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "The number of resampled draws must be positive.");
        var cumulative = new double[weights.Count];
        double total = 0;
        for (int i = 0; i < weights.Count; i++)
        {
            if (!(weights[i] >= 0) || double.IsInfinity(weights[i])) throw new ArgumentException("Weights must be finite and non-negative.", nameof(weights));
            total += weights[i];
            cumulative[i] = total;
        }
        if (!(total > 0)) throw new ArgumentException("All weights are zero.", nameof(weights));
        var indices = new int[count];
        for (int j = 0; j < count; j++)
        {
            int i = Array.BinarySearch(cumulative, random.NextDouble() * total);
            if (i < 0) i = ~i;
            // Skip ties (zero-weight draws share the cumulative value of their predecessor).
            while (i < cumulative.Length - 1 && weights[i] == 0) i++;
            indices[j] = Math.Min(i, cumulative.Length - 1);
        }
        return indices;
    }
}
