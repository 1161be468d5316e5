using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>
/// y = μ + L x with a fixed vector μ and a fixed lower-triangular L with positive diagonal (e.g. a Gaussian fit's
/// mean and Cholesky factor): log |det J| = Σ log Lᵢᵢ, inverse by triangular solve. Put last in a flow, it
/// preconditions: the trainable layers then work on a posterior that is roughly N(0, I) whatever its scales and
/// correlations. Values are kept exactly in float64 and used in the input's dtype.
/// </summary>
public sealed class FixedLinearTransform : FlowTransform
{
    private readonly CachedConstant location, factor, factorTransposed, logDeterminant;

    public FixedLinearTransform(double[] mean, double[,] choleskyFactor) : base(nameof(FixedLinearTransform), mean?.Length ?? 0)
    {
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(choleskyFactor);
        int d = mean.Length;
        if (choleskyFactor.GetLength(0) != d || choleskyFactor.GetLength(1) != d)
            throw new ArgumentException($"The Cholesky factor is {choleskyFactor.GetLength(0)}×{choleskyFactor.GetLength(1)} but the mean has {d} entries.", nameof(choleskyFactor));
        var flat = new double[d * d];
        var transposed = new double[d * d];
        double logDet = 0;
        for (int i = 0; i < d; i++)
        {
            if (!double.IsFinite(mean[i])) throw new ArgumentOutOfRangeException(nameof(mean), mean[i], $"mean[{i}] must be finite.");
            for (int j = 0; j < d; j++)
            {
                double v = choleskyFactor[i, j];
                if (j > i && v != 0) throw new ArgumentException($"The Cholesky factor must be lower triangular; entry [{i}, {j}] is {v}.", nameof(choleskyFactor));
                if (!double.IsFinite(v)) throw new ArgumentException($"Entry [{i}, {j}] of the Cholesky factor is {v}.", nameof(choleskyFactor));
                flat[i * d + j] = v;
                transposed[j * d + i] = v;
            }
            if (!(choleskyFactor[i, i] > 0)) throw new ArgumentException($"The Cholesky factor's diagonal must be positive; entry [{i}, {i}] is {choleskyFactor[i, i]}.", nameof(choleskyFactor));
            logDet += Math.Log(choleskyFactor[i, i]);
        }
        Mean = (double[])mean.Clone();
        location = new CachedConstant(mean);
        factor = new CachedConstant(flat, d, d);
        factorTransposed = new CachedConstant(transposed, d, d);
        logDeterminant = new CachedConstant(new[] { logDet });
        LogDeterminant = logDet;
    }

    public IReadOnlyList<double> Mean { get; }

    /// <summary>Σ log Lᵢᵢ.</summary>
    public double LogDeterminant { get; }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        var y = torch.addmm(location.Like(input), input, factorTransposed.Like(input), 1, 1);
        return (y, logDeterminant.Like(input).expand(input.shape[0]).clone());
    }

    public override bool HasInverse => true;

    public override (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input)
    {
        CheckInput(input);
        var x = torch.linalg.solve_triangular(factor.Like(input), (input - location.Like(input)).t(), upper: false).t();
        return (x, logDeterminant.Like(input).neg().expand(input.shape[0]).clone());
    }
}
