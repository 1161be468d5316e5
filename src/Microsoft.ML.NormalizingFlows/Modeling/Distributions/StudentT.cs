using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Student-t(ν, μ, σ): log Γ((ν+1)/2) − log Γ(ν/2) − ½ log(νπ) − log σ − (ν+1)/2 · log(1 + ((x − μ)/σ)²/ν).</summary>
public sealed class StudentT : Distribution
{
    private readonly Tensor dof, loc, scale;

    public StudentT(Tensor degreesOfFreedom, Tensor loc, Tensor scale)
    {
        dof = Parameter(degreesOfFreedom, nameof(degreesOfFreedom));
        this.loc = Parameter(loc, nameof(loc));
        this.scale = Parameter(scale, nameof(scale));
    }

    public StudentT(double degreesOfFreedom, double loc = 0, double scale = 1) : this(Positive(degreesOfFreedom, nameof(degreesOfFreedom)), Finite(loc, nameof(loc)), Positive(scale, nameof(scale))) { }

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, loc);
        var nu = Like(dof, x);
        var sigma = Like(scale, x);
        var halfNuPlusOne = nu.Plus(1) * S(0.5);
        var z = (x - Like(loc, x)) / sigma;
        return torch.lgamma(halfNuPlusOne) - torch.lgamma(nu * S(0.5)) - S(0.5) * (nu * S(Math.PI)).log() - sigma.log()
               - halfNuPlusOne * torch.log1p(z.Squared() / nu);
    }
}
