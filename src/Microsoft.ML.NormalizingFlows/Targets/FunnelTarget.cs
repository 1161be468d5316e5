using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Targets;

/// <summary>
/// Neal's funnel in d dimensions: v ~ N(0, s²) and, given v, x₁ … x_{d−1} independent N(0, e^v), with
/// z = (v, x₁, …, x_{d−1}). The log density is the normalized one, so log Z = 0 and every fit on it can
/// report the exact KL(q‖p). The neck (v ≪ 0) is narrow and the mouth (v ≫ 0) wide: a Gaussian q shrinks
/// the spread of v, which is what this target exposes.
/// </summary>
public sealed class FunnelTarget : Target
{
    /// <param name="dimension">d ≥ 2: one funnel coordinate v and d − 1 coordinates x (Neal's example has d = 10).</param>
    /// <param name="scale">s &gt; 0: the standard deviation of v (Neal's example has 3).</param>
    /// <exception cref="ArgumentOutOfRangeException">d &lt; 2, or s not positive and finite.</exception>
    public FunnelTarget(int dimension = 10, double scale = 3.0) : base("funnel", CheckDimension(dimension))
    {
        if (!(scale > 0) || double.IsInfinity(scale))
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "The funnel's scale (sd of v) must be positive and finite.");
        Scale = scale;
    }

    /// <summary>The standard deviation s of the funnel coordinate v (coordinate 0).</summary>
    public double Scale { get; }

    /// <summary>0: the density is normalized.</summary>
    public override double? LogNormalizer => 0.0;

    /// <summary>
    /// log p(v, x) = log N(v; 0, s²) + Σᵢ log N(xᵢ; 0, e^v)
    ///             = −v²/2s² − log s − (d − 1)v/2 − e^{−v} Σᵢ xᵢ²/2 − (d/2) log 2π.
    /// </summary>
    public override Tensor LogDensity(Tensor z)
    {
        var v = z[.., 0];
        var x = z[.., 1..];
        int rest = Dimension - 1;
        return S(-0.5) * (v / S(Scale)).Squared() - S(0.5 * rest) * v - S(0.5) * x.Squared().sum(1) * (-v).exp()
               - S(Math.Log(Scale) + Dimension * HalfLogTwoPi);
    }

    private static int CheckDimension(int dimension) => dimension >= 2
        ? dimension
        : throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The funnel needs d ≥ 2 (the funnel coordinate v and at least one x).");
}
