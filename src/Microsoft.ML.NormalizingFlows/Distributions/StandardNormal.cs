using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Distributions;

/// <summary>N(0, I) over R^d: the usual fixed base of a flow.</summary>
public sealed class StandardNormal : BaseDistribution
{
    // A buffer (not a parameter) so that .to(device/dtype) tells sampling where to draw.
    private readonly Tensor placement;

    public StandardNormal(int dimension) : base(nameof(StandardNormal), dimension)
    {
        placement = torch.zeros(1);
        register_buffer("placement", placement);
    }

    public override (Tensor Sample, Tensor LogProb) SampleFromNoise(Tensor noise)
    {
        CheckInput(noise, nameof(noise));
        return (noise, LogProb(noise));
    }

    /// <summary>The sample is the noise, and ∇ log N(z; 0, I) = −z.</summary>
    internal override Tensor? ScoreFromNoise(Tensor noise) => noise.detach().neg();

    public override Tensor LogProb(Tensor z)
    {
        CheckInput(z);
        return z.Squared().sum(1).mul(S(-0.5)).Plus(LogNormalizerOfStandardNormal);
    }
}
