using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>HalfNormal(σ) on x ≥ 0: log 2 − ½ log 2π − log σ − ½ (x/σ)².</summary>
public sealed class HalfNormal : Distribution
{
    private readonly Tensor scale;

    public HalfNormal(Tensor scale) { this.scale = Parameter(scale, nameof(scale)); }
    public HalfNormal(double scale) : this(Positive(scale, nameof(scale))) { }

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, scale);
        var sigma = Like(scale, x);
        return Restrict((S(-0.5) * (x / sigma).Squared() - sigma.log()).Plus(Math.Log(2) - HalfLogTwoPi), x.ge(S(0)));
    }
}
