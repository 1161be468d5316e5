using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>HalfCauchy(γ) on x ≥ 0: log 2 − log π − log γ − log(1 + (x/γ)²).</summary>
public sealed class HalfCauchy : Distribution
{
    private readonly Tensor scale;

    public HalfCauchy(Tensor scale) { this.scale = Parameter(scale, nameof(scale)); }
    public HalfCauchy(double scale) : this(Positive(scale, nameof(scale))) { }

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, scale);
        var gamma = Like(scale, x);
        return Restrict((torch.log1p((x / gamma).Squared()).neg() - gamma.log()).Plus(Math.Log(2 / Math.PI)), x.ge(S(0)));
    }
}
