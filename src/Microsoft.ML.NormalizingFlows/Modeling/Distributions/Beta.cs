using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Beta(a, b) on 0 &lt; x &lt; 1: log Γ(a + b) − log Γ(a) − log Γ(b) + (a − 1) log x + (b − 1) log(1 − x).</summary>
public sealed class Beta : Distribution
{
    private readonly Tensor a, b;

    public Beta(Tensor alpha, Tensor beta) { a = Parameter(alpha, nameof(alpha)); b = Parameter(beta, nameof(beta)); }
    public Beta(double alpha, double beta) : this(Positive(alpha, nameof(alpha)), Positive(beta, nameof(beta))) { }

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, a);
        var alpha = Like(a, x);
        var beta = Like(b, x);
        var logNormalizer = torch.lgamma(alpha.Plus(beta)) - torch.lgamma(alpha) - torch.lgamma(beta);
        var logP = logNormalizer.Plus(alpha.Plus(-1) * x.log()).Plus(beta.Plus(-1) * torch.log1p(x.neg()));
        return Restrict(logP, x.gt(S(0)).logical_and(x.lt(S(1))));
    }
}
