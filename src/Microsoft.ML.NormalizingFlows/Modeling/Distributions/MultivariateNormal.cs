using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>
/// MultivariateNormal(μ, L L&#x1D40;) from the Cholesky factor L of the covariance (lower triangular, positive diagonal):
/// −½‖L⁻¹(x − μ)‖² − Σ log Lᵢᵢ − (d/2) log 2π. The value's last dimension is the event.
/// </summary>
public sealed class MultivariateNormal : Distribution
{
    private readonly Tensor loc, choleskyFactor;

    public MultivariateNormal(Tensor loc, Tensor choleskyFactor)
    {
        this.loc = Parameter(loc, nameof(loc));
        this.choleskyFactor = Parameter(choleskyFactor, nameof(choleskyFactor));
        if (choleskyFactor.dim() < 2 || choleskyFactor.shape[^1] != choleskyFactor.shape[^2])
            throw new ArgumentException($"The Cholesky factor must be a (batch of) square matrices; got shape [{string.Join(", ", choleskyFactor.shape)}].", nameof(choleskyFactor));
        if (loc.shape.Length == 0 || loc.shape[^1] != choleskyFactor.shape[^1])
            throw new ArgumentException($"loc has {(loc.shape.Length == 0 ? 0 : loc.shape[^1])} coordinates but the Cholesky factor is {choleskyFactor.shape[^1]}×{choleskyFactor.shape[^1]}.", nameof(loc));
    }

    public override int EventDimensions => 1;

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, loc);
        var l = Like(choleskyFactor, x);
        long d = l.shape[^1];
        var centered = (x - Like(loc, x)).unsqueeze(-1);
        var batch = torch.broadcast_shapes(centered.shape[..^2], l.shape[..^2]);
        var solved = torch.linalg.solve_triangular(l.expand(batch.Append(d).Append(d).ToArray()), centered.expand(batch.Append(d).Append(1).ToArray()), upper: false);
        var mahalanobis = solved.Squared().sum(-1).sum(-1);
        var logDet = l.diagonal(dim1: -2, dim2: -1).log().sum(-1);
        return (S(-0.5) * mahalanobis - logDet).Plus(-d * HalfLogTwoPi);
    }
}
