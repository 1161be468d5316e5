using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>Which direction of a MADE-conditioned autoregressive transform costs one network pass.</summary>
public enum AutoregressiveDirection
{
    /// <summary>
    /// IAF (Kingma et al. 2016): the conditioner reads the transform's INPUT (the base side),
    /// y_i = g(x_i; θ_i(x_&lt;i)). Forward (sampling, with log q of the samples) is one pass; the inverse
    /// (log q at arbitrary points) needs d sequential passes. Reverse-KL VI only samples and scores its own
    /// samples, so this is the VI choice.
    /// </summary>
    Inverse,

    /// <summary>
    /// MAF (Papamakarios et al. 2017): the conditioner reads the transform's OUTPUT (the data side),
    /// x_i = g⁻¹(y_i; θ_i(y_&lt;i)). The inverse (density of given data) is one pass; forward sampling needs
    /// d sequential passes. Density estimation (maximum likelihood on data) is the natural use.
    /// </summary>
    Masked,
}

/// <summary>
/// A masked autoregressive transform: a MADE network (residual, masked) gives the parameters of a monotone
/// elementwise map of each coordinate from the previous coordinates (in index order; put a
/// <see cref="PermutationTransform"/> between layers to vary the order). The Jacobian is triangular:
/// log|det J| = Σ log g′. Works for any d ≥ 1 (at d = 1 the map's parameters are learned constants).
/// </summary>
public sealed class MaskedAutoregressiveTransform : FlowTransform
{
    private readonly ResidualNetwork made;
    private readonly ElementwiseMap map;

    /// <param name="dimension">d ≥ 1.</param>
    /// <param name="map">The elementwise map: <see cref="AffineMap"/> (IAF/MAF) or <see cref="RationalQuadraticSplineMap"/> (NSF-AR).</param>
    /// <param name="direction">Which side the MADE reads: <see cref="AutoregressiveDirection.Inverse"/> (IAF, one-pass sampling)
    /// or <see cref="AutoregressiveDirection.Masked"/> (MAF, one-pass density).</param>
    /// <param name="hiddenWidth">Width of the MADE's hidden layers.</param>
    /// <param name="residualBlocks">Masked residual blocks in the MADE (each two layers).</param>
    /// <param name="identityInit">Zero the MADE's last layer so the layer starts as the identity.</param>
    /// <param name="generator">Draws the initial weights (null: TorchSharp's global generator).</param>
    public MaskedAutoregressiveTransform(int dimension, ElementwiseMap map, AutoregressiveDirection direction, int hiddenWidth = 64,
        int residualBlocks = 1, bool identityInit = true, Generator? generator = null) : base(nameof(MaskedAutoregressiveTransform), dimension)
    {
        this.map = map ?? throw new ArgumentNullException(nameof(map));
        if (!Enum.IsDefined(direction)) throw new ArgumentOutOfRangeException(nameof(direction), direction, "Unknown direction.");
        Direction = direction;
        made = ResidualNetwork.Made(dimension, map.ParametersPerDimension, hiddenWidth, residualBlocks, identityInit, generator);
        RegisterComponents();
    }

    public AutoregressiveDirection Direction { get; }

    public ElementwiseMap Map => map;

    public override bool HasInverse => true;

    private Tensor Parameters(Tensor x) => made.call(x).view(x.shape[0], Dimension, map.ParametersPerDimension);

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        if (Direction == AutoregressiveDirection.Inverse)
        {
            var (y, ld) = map.Forward(input, Parameters(input));
            return (y, ld.sum(1));
        }
        return Sequential(input, inverse: false);
    }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input)
    {
        CheckInput(input);
        if (Direction == AutoregressiveDirection.Masked)
        {
            var (x, ld) = map.Inverse(input, Parameters(input));
            return (x, ld.sum(1));
        }
        return Sequential(input, inverse: true);
    }

    /// <summary>
    /// The slow direction: solve for the side the conditioner reads, one coordinate per pass. After pass t
    /// coordinates 0..t are exact (coordinate t depends only on earlier ones), so d passes suffice, and the
    /// last pass's parameters are those of the final solution.
    /// </summary>
    private (Tensor, Tensor) Sequential(Tensor given, bool inverse)
    {
        var solution = torch.zeros_like(given);
        Tensor logDerivative = null!;
        for (int i = 0; i < Dimension; i++)
        {
            var p = Parameters(solution);
            (solution, logDerivative) = inverse ? map.Inverse(given, p) : map.Forward(given, p);
        }
        return (solution, logDerivative.sum(1));
    }
}
