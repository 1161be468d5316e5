using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>
/// A learned monotone rational-quadratic spline of each coordinate on its own (no conditioner): y_i = g(x_i; θ_i)
/// with θ a [d, 3K − 1] parameter, identity at zero. Couplings and autoregressive layers reshape a coordinate only
/// through its dependence on the others; this layer gives each marginal its own skew and tail shape directly, which
/// is what the posteriors of few-group scale parameters (a long tail on one side) need, at the cost of one spline
/// evaluation per step. Enabled in the presets by the setting marginal-spline = true (last layer).
/// </summary>
public sealed class MarginalSplineTransform : FlowTransform
{
    private readonly RationalQuadraticSplineMap map;
    private readonly Parameter knots;

    public MarginalSplineTransform(int dimension, int bins = 8, double bound = 5.0) : base(nameof(MarginalSplineTransform), dimension)
    {
        map = new RationalQuadraticSplineMap(bins, bound);
        knots = new Parameter(torch.zeros(dimension, map.ParametersPerDimension));
        register_parameter("knots", knots);
    }

    public int Bins => map.Bins;
    public double Bound => map.Bound;

    public override bool HasInverse => true;

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        var (output, logDerivative) = map.Forward(input, Knots(input));
        return (output, logDerivative.sum(1));
    }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input)
    {
        CheckInput(input);
        var (output, logDerivative) = map.Inverse(input, Knots(input));
        return (output, logDerivative.sum(1));
    }

    /// <summary>The same knots for every row of the batch: [B, d, P] as a view.</summary>
    private Tensor Knots(Tensor input) => knots.unsqueeze(0).expand(input.shape[0], Dimension, map.ParametersPerDimension);
}
