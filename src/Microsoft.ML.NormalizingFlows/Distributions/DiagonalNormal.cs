using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Distributions;

/// <summary>
/// N(μ, diag σ²) with learnable μ and log σ: the mean-field Gaussian family of classic VI (ADVI's
/// "meanfield"), or a learnable base for a flow.
/// </summary>
public sealed class DiagonalNormal : BaseDistribution
{
    private readonly TorchSharp.Modules.Parameter loc;
    private readonly TorchSharp.Modules.Parameter logScale;

    public DiagonalNormal(int dimension, double initialScale = 1.0) : base(nameof(DiagonalNormal), dimension)
    {
        if (!(initialScale > 0) || double.IsInfinity(initialScale))
            throw new ArgumentOutOfRangeException(nameof(initialScale), initialScale, "initialScale must be positive and finite.");
        loc = new TorchSharp.Modules.Parameter(torch.zeros(dimension));
        using var initialLogScale = Math.Log(initialScale).ToScalar(); // held until the call returns (see RootedScalars)
        logScale = new TorchSharp.Modules.Parameter(torch.full(dimension, initialLogScale));
        RegisterComponents();
    }

    public Tensor Location => loc;
    public Tensor Scale => logScale.exp();

    public override (Tensor Sample, Tensor LogProb) SampleFromNoise(Tensor noise)
    {
        CheckInput(noise, nameof(noise));
        var z = torch.addcmul(loc, noise, logScale.exp(), S(1));
        var logProb = (noise.Squared().sum(1).mul(S(-0.5)) - logScale.sum()).Plus(LogNormalizerOfStandardNormal);
        return (z, logProb);
    }

    /// <summary>z = μ + σε, so ∇ log q(z) = −(z − μ)/σ² = −ε/σ.</summary>
    internal override Tensor? ScoreFromNoise(Tensor noise)
    {
        using var noGrad = torch.no_grad();
        return noise.detach().neg().mul_(logScale.neg().exp());
    }

    public override Tensor LogProb(Tensor z)
    {
        CheckInput(z);
        var eps = (z - loc) * torch.exp(-logScale);
        return (eps.Squared().sum(1).mul(S(-0.5)) - logScale.sum()).Plus(LogNormalizerOfStandardNormal);
    }
}
