using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>
/// LKJ(η) over Cholesky factors L of d×d correlation matrices (Lewandowski, Kurowicka &amp; Joe 2009): the density of
/// Ω = L Lᵀ is det(Ω)^(η−1) / c_d(η), and with the Jacobian of Ω ↦ L it is
/// Σ_{i=2..d} (d − i + 2η − 2) log Lᵢᵢ − log c_d(η), where log c_d(η) = Σ_{k=1..d−1} [(2η − 2 + d − k)(d − k) log 2 +
/// (d − k) log B(η + (d − k − 1)/2, η + (d − k − 1)/2)]. The value's last two dimensions are the event.
/// </summary>
public sealed class LkjCholesky : Distribution
{
    private readonly int dimension;
    private readonly double concentration;

    public LkjCholesky(int dimension, double concentration = 1.0)
    {
        if (dimension < 2) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "LKJ needs at least 2×2 matrices.");
        if (!(concentration > 0) || double.IsInfinity(concentration)) throw new ArgumentOutOfRangeException(nameof(concentration), concentration, "η must be positive and finite.");
        this.dimension = dimension;
        this.concentration = concentration;
        LogNormalizer = LogNormalizerOf(dimension, concentration);
        exponents = new CachedConstant(Enumerable.Range(2, dimension - 1).Select(i => dimension - i + 2 * concentration - 2).ToArray());
    }

    private readonly CachedConstant exponents; // d − i + 2η − 2 for i = 2 … d

    public override int EventDimensions => 2;

    /// <summary>log c_d(η).</summary>
    public double LogNormalizer { get; }

    internal static double LogNormalizerOf(int d, double eta)
    {
        double sum = 0;
        for (int k = 1; k < d; k++)
        {
            double b = eta + (d - k - 1) / 2.0;
            sum += (2 * eta - 2 + d - k) * (d - k) * Math.Log(2) + (d - k) * (2 * LogGamma(b) - LogGamma(2 * b));
        }
        return sum;
    }

    /// <summary>log Γ(x) by libtorch's lgamma (one number, once per distribution).</summary>
    private static double LogGamma(double x)
    {
        using var t = torch.tensor(x, ScalarType.Float64);
        using var result = torch.lgamma(t);
        return result.item<double>();
    }

    public override Tensor LogProb(Tensor value)
    {
        if (value.dim() < 2 || value.shape[^1] != dimension || value.shape[^2] != dimension)
            throw new ArgumentException($"LKJCholesky({dimension}) values are {dimension}×{dimension} matrices; got shape [{string.Join(", ", value.shape)}].", nameof(value));
        var diagonal = value.diagonal(dim1: -2, dim2: -1).narrow(-1, 1, dimension - 1); // L₂₂ … L_dd
        return (exponents.Like(value) * diagonal.log()).sum(-1).Plus(-LogNormalizer);
    }
}
