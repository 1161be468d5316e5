using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Bernoulli with log-odds ℓ (Stan's bernoulli_logit): y ℓ − log(1 + e^ℓ) for y ∈ {0, 1}.</summary>
public sealed class BernoulliLogit : Distribution
{
    private readonly Tensor logits;

    public BernoulliLogit(Tensor logits) { this.logits = Parameter(logits, nameof(logits)); }

    public override Tensor LogProb(Tensor value)
    {
        var l = logits;
        var y = AsFloat(value, l).to(l.dtype);
        return Restrict(y * l - l.Softplus(), y.eq(S(0)).logical_or(y.eq(S(1))));
    }
}
