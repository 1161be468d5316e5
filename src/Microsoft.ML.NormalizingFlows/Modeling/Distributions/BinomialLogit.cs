using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Binomial(n, ℓ) with log-odds ℓ (Stan's binomial_logit): log C(n, k) + k ℓ − n log(1 + e^ℓ) for k = 0 … n.</summary>
public sealed class BinomialLogit : Distribution
{
    private readonly Tensor trials, logits;

    public BinomialLogit(Tensor trials, Tensor logits) { this.trials = trials ?? throw new ArgumentNullException(nameof(trials)); this.logits = Parameter(logits, nameof(logits)); }

    public override Tensor LogProb(Tensor value)
    {
        var l = logits;
        var k = AsFloat(value, l).to(l.dtype);
        var n = trials.to(l.dtype, l.device);
        var logChoose = torch.lgamma(n.Plus(1)) - torch.lgamma(k.Plus(1)) - torch.lgamma((n - k).Plus(1));
        var inSupport = k.ge(S(0)).logical_and(k.le(n)).logical_and(k.eq(k.floor()));
        return Restrict(logChoose.Plus(k * l) - n * l.Softplus(), inSupport);
    }
}
