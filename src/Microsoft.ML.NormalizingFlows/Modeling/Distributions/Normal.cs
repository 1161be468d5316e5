using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Normal(μ, σ): −½((x − μ)/σ)² − log σ − ½ log 2π.</summary>
public sealed class Normal : Distribution
{
    private readonly Tensor loc, scale;

    public Normal(Tensor loc, Tensor scale) { this.loc = Parameter(loc, nameof(loc)); this.scale = Parameter(scale, nameof(scale)); }
    public Normal(double loc, double scale) : this(Finite(loc, nameof(loc)), Positive(scale, nameof(scale))) { }

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, loc);
        var sigma = Like(scale, x);
        return (S(-0.5) * ((x - Like(loc, x)) / sigma).Squared() - sigma.log()).Plus(-HalfLogTwoPi);
    }
}
