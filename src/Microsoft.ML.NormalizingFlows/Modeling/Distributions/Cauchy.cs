using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Cauchy(μ, γ): −log π − log γ − log(1 + ((x − μ)/γ)²).</summary>
public sealed class Cauchy : Distribution
{
    private readonly Tensor loc, scale;

    public Cauchy(Tensor loc, Tensor scale) { this.loc = Parameter(loc, nameof(loc)); this.scale = Parameter(scale, nameof(scale)); }
    public Cauchy(double loc, double scale) : this(Finite(loc, nameof(loc)), Positive(scale, nameof(scale))) { }

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, loc);
        var gamma = Like(scale, x);
        return (torch.log1p(((x - Like(loc, x)) / gamma).Squared()).neg() - gamma.log()).Plus(-Math.Log(Math.PI));
    }
}
