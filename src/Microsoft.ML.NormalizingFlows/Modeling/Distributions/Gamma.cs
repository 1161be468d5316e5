using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Gamma(α, β) with shape α and rate β on x &gt; 0: α log β − log Γ(α) + (α − 1) log x − βx.</summary>
public sealed class Gamma : Distribution
{
    private readonly Tensor shape, rate;

    public Gamma(Tensor shape, Tensor rate) { this.shape = Parameter(shape, nameof(shape)); this.rate = Parameter(rate, nameof(rate)); }
    public Gamma(double shape, double rate) : this(Positive(shape, nameof(shape)), Positive(rate, nameof(rate))) { }

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, shape);
        var alpha = Like(shape, x);
        var beta = Like(rate, x);
        return Restrict((alpha * beta.log() - torch.lgamma(alpha)).Plus(alpha.Plus(-1) * x.log()) - beta * x, x.gt(S(0)));
    }
}
