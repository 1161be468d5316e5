using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Targets;

/// <summary>
/// A d-dimensional Gaussian N(m, Σ) with a dense, randomly rotated covariance of a chosen condition number,
/// generated reproducibly from a seed: Σ = Q diag(λ) Qᵀ with Q a uniformly random rotation and eigenvalues λ
/// log-spaced from κ^(−1/2) to κ^(1/2) (condition number κ, geometric mean 1), and m with N(0, 1) entries.
/// The log density is deliberately left unnormalized, log p̃(z) = −½ (z − m)ᵀ Σ⁻¹ (z − m), with the exact
/// log Z = (d/2) log 2π + ½ log det Σ, so fits report the exact KL(q‖p) and the log Z path is exercised.
/// </summary>
public sealed class CorrelatedGaussianTarget : Target
{
    private readonly double[] mean;
    private readonly double[] covariance;   // row-major d × d
    private readonly CachedConstant meanConstant;
    private readonly CachedConstant precision;  // Σ⁻¹, d × d
    private readonly double logZ;

    /// <param name="dimension">d ≥ 2.</param>
    /// <param name="conditionNumber">κ ≥ 1: the ratio of the largest to the smallest eigenvalue of Σ.</param>
    /// <param name="seed">Seeds the rotation and the mean (same seed, same target).</param>
    /// <exception cref="ArgumentOutOfRangeException">d &lt; 2, or κ not finite and ≥ 1.</exception>
    public CorrelatedGaussianTarget(int dimension = 50, double conditionNumber = 100, long seed = 0)
        : base($"correlated-gaussian-{dimension}", CheckDimension(dimension))
    {
        if (!(conditionNumber >= 1) || double.IsInfinity(conditionNumber))
            throw new ArgumentOutOfRangeException(nameof(conditionNumber), conditionNumber, "The condition number must be finite and at least 1.");
        ConditionNumber = conditionNumber;
        Seed = seed;
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var generator = new Generator((ulong)seed);
        var gaussian = torch.randn(new long[] { dimension, dimension }, dtype: ScalarType.Float64, generator: generator);
        var (q, r) = torch.linalg.qr(gaussian);
        q = q * r.diagonal().sign().unsqueeze(0);  // sign fix: Haar-distributed rotation
        var exponents = torch.linspace(-0.5, 0.5, dimension, dtype: ScalarType.Float64);
        var eigenvalues = torch.pow(conditionNumber, exponents);
        Eigenvalues = eigenvalues.data<double>().ToArray();
        mean = torch.randn(new long[] { dimension }, dtype: ScalarType.Float64, generator: generator).data<double>().ToArray();
        covariance = (q * eigenvalues.unsqueeze(0)).matmul(q.t()).data<double>().ToArray();
        precision = new CachedConstant((q / eigenvalues.unsqueeze(0)).matmul(q.t()).data<double>().ToArray(), dimension, dimension);
        meanConstant = new CachedConstant(mean);
        logZ = dimension * HalfLogTwoPi + 0.5 * Eigenvalues.Sum(Math.Log);
    }

    /// <summary>κ: largest over smallest eigenvalue of Σ.</summary>
    public double ConditionNumber { get; }

    /// <summary>The seed the target was generated from.</summary>
    public long Seed { get; }

    /// <summary>The eigenvalues of Σ, ascending.</summary>
    public IReadOnlyList<double> Eigenvalues { get; }

    /// <summary>The mean m.</summary>
    public IReadOnlyList<double> Mean => mean;

    /// <summary>The covariance Σ as a new d × d array.</summary>
    public double[,] Covariance()
    {
        var result = new double[Dimension, Dimension];
        Buffer.BlockCopy(covariance, 0, result, 0, covariance.Length * sizeof(double));
        return result;
    }

    /// <summary>(d/2) log 2π + ½ log det Σ.</summary>
    public override double? LogNormalizer => logZ;

    public override Tensor LogDensity(Tensor z)
    {
        var centered = z - meanConstant.Like(z);
        return S(-0.5) * (centered.matmul(precision.Like(z)) * centered).sum(1);
    }

    private static int CheckDimension(int dimension) => dimension >= 2
        ? dimension
        : throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The correlated Gaussian needs d ≥ 2.");
}
