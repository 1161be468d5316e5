using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Exponential(λ) (rate λ) on x ≥ 0: log λ − λx.</summary>
public sealed class Exponential : Distribution
{
    private readonly Tensor rate;

    public Exponential(Tensor rate) { this.rate = Parameter(rate, nameof(rate)); }
    public Exponential(double rate) : this(Positive(rate, nameof(rate))) { }

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, rate);
        var lambda = Like(rate, x);
        return Restrict(lambda.log() - lambda * x, x.ge(S(0)));
    }
}
