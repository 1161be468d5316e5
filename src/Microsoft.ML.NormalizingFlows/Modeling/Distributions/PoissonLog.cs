using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Poisson with log rate η (Stan's poisson_log): k η − e^η − log k! for k = 0, 1, ….</summary>
public sealed class PoissonLog : Distribution
{
    private readonly Tensor logRate;

    public PoissonLog(Tensor logRate) { this.logRate = Parameter(logRate, nameof(logRate)); }

    public override Tensor LogProb(Tensor value)
    {
        var eta = logRate;
        var k = AsFloat(value, eta).to(eta.dtype);
        return Restrict(k * eta - eta.exp() - torch.lgamma(k.Plus(1)), k.ge(S(0)).logical_and(k.eq(k.floor())));
    }
}
