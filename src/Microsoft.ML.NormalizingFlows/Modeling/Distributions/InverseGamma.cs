using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>InverseGamma(α, β) with shape α and scale β on x &gt; 0: α log β − log Γ(α) − (α + 1) log x − β/x.</summary>
public sealed class InverseGamma : Distribution
{
    private readonly Tensor shape, scale;

    public InverseGamma(Tensor shape, Tensor scale) { this.shape = Parameter(shape, nameof(shape)); this.scale = Parameter(scale, nameof(scale)); }
    public InverseGamma(double shape, double scale) : this(Positive(shape, nameof(shape)), Positive(scale, nameof(scale))) { }

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, shape);
        var alpha = Like(shape, x);
        var beta = Like(scale, x);
        return Restrict(alpha * beta.log() - torch.lgamma(alpha) - alpha.Plus(1) * x.log() - beta / x, x.gt(S(0)));
    }
}
