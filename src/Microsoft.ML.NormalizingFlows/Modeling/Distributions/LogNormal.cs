using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>LogNormal(μ, σ) on x &gt; 0: the Normal(μ, σ) density of log x, minus log x.</summary>
public sealed class LogNormal : Distribution
{
    private readonly Normal normal;

    public LogNormal(Tensor loc, Tensor scale) { normal = new Normal(loc, scale); }
    public LogNormal(double loc, double scale) { normal = new Normal(loc, scale); }

    public override Tensor LogProb(Tensor value)
    {
        var x = value.is_floating_point() ? value : value.to(ScalarType.Float32);
        var logX = x.log();
        return Restrict(normal.LogProb(logX) - logX, x.gt(S(0)));
    }
}
