using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Dirichlet(α) over the simplex (last dimension): log Γ(Σα) − Σ log Γ(α) + Σ (α − 1) log x.</summary>
public sealed class Dirichlet : Distribution
{
    private readonly Tensor concentration;

    public Dirichlet(Tensor concentration) { this.concentration = Parameter(concentration, nameof(concentration)); }

    public override int EventDimensions => 1;

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, concentration);
        var alpha = Like(concentration, x);
        var logP = (torch.lgamma(alpha.sum(-1)) - torch.lgamma(alpha).sum(-1)).Plus((alpha.Plus(-1) * x.log()).sum(-1));
        var onSimplex = x.ge(S(0)).all(-1).logical_and((x.sum(-1).Plus(-1)).abs().le(S(x.dtype == ScalarType.Float64 ? 1e-9 : 1e-5)));
        return Restrict(logP, onSimplex);
    }
}
