using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>
/// Negative binomial with mean μ and concentration φ (Stan's neg_binomial_2; variance μ + μ²/φ):
/// log Γ(k + φ) − log k! − log Γ(φ) + φ log(φ/(μ + φ)) + k log(μ/(μ + φ)) for k = 0, 1, ….
/// </summary>
public sealed class NegativeBinomial : Distribution
{
    private readonly Tensor mean, concentration;

    public NegativeBinomial(Tensor mean, Tensor concentration) { this.mean = Parameter(mean, nameof(mean)); this.concentration = Parameter(concentration, nameof(concentration)); }
    public NegativeBinomial(double mean, double concentration) : this(Positive(mean, nameof(mean)), Positive(concentration, nameof(concentration))) { }

    public override Tensor LogProb(Tensor value)
    {
        var k = AsFloat(value, mean);
        var mu = Like(mean, k);
        var phi = Like(concentration, k);
        var logTotal = mu.Plus(phi).log();
        var logP = (torch.lgamma(k.Plus(phi)) - torch.lgamma(k.Plus(1)) - torch.lgamma(phi))
            .Plus(phi * (phi.log() - logTotal)).Plus(k * (mu.log() - logTotal));
        return Restrict(logP, k.ge(S(0)).logical_and(k.eq(k.floor())));
    }
}
