using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Uniform(lower, upper): −log(upper − lower) on lower ≤ x ≤ upper.</summary>
public sealed class Uniform : Distribution
{
    private readonly Tensor lower, upper;

    public Uniform(Tensor lower, Tensor upper) { this.lower = Parameter(lower, nameof(lower)); this.upper = Parameter(upper, nameof(upper)); }
    public Uniform(double lower, double upper) : this(Finite(lower, nameof(lower)), Finite(upper, nameof(upper)))
    {
        if (!(upper > lower)) throw new ArgumentOutOfRangeException(nameof(upper), upper, $"Uniform needs upper > lower ({lower}).");
    }

    public override Tensor LogProb(Tensor value)
    {
        var x = AsFloat(value, lower);
        var lo = Like(lower, x);
        var hi = Like(upper, x);
        var logP = (hi - lo).log().neg() * torch.ones_like(x);
        return Restrict(logP, x.ge(lo).logical_and(x.le(hi)));
    }
}
