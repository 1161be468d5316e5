using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Distributions;

/// <summary>
/// N(μ, LLᵀ) with learnable μ and lower-triangular Cholesky factor L (diagonal kept positive through
/// exp of a free parameter): the full-rank Gaussian family of classic VI (ADVI's "fullrank").
/// </summary>
public sealed class FullRankNormal : BaseDistribution
{
    private readonly TorchSharp.Modules.Parameter loc;
    private readonly TorchSharp.Modules.Parameter offDiagonal;
    private readonly TorchSharp.Modules.Parameter logDiagonal;
    private readonly Tensor strictlyLowerMask;

    public FullRankNormal(int dimension, double initialScale = 1.0) : base(nameof(FullRankNormal), dimension)
    {
        if (!(initialScale > 0) || double.IsInfinity(initialScale))
            throw new ArgumentOutOfRangeException(nameof(initialScale), initialScale, "initialScale must be positive and finite.");
        loc = new TorchSharp.Modules.Parameter(torch.zeros(dimension));
        offDiagonal = new TorchSharp.Modules.Parameter(torch.zeros(dimension, dimension));
        using var initialLogScale = Math.Log(initialScale).ToScalar(); // held until the call returns (see RootedScalars)
        logDiagonal = new TorchSharp.Modules.Parameter(torch.full(dimension, initialLogScale));
        strictlyLowerMask = torch.ones(dimension, dimension).tril(-1);
        register_buffer("strictlyLowerMask", strictlyLowerMask);
        RegisterComponents();
    }

    public Tensor Location => loc;

    /// <summary>The Cholesky factor L of the covariance.</summary>
    public Tensor CholeskyFactor => (offDiagonal * strictlyLowerMask).Plus(torch.diag(logDiagonal.exp()));

    /// <summary>The covariance LLᵀ.</summary>
    public Tensor Covariance { get { var l = CholeskyFactor; return l.matmul(l.t()); } }

    public override (Tensor Sample, Tensor LogProb) SampleFromNoise(Tensor noise)
    {
        CheckInput(noise, nameof(noise));
        var z = torch.addmm(loc, noise, CholeskyFactor.t(), 1, 1);
        var logProb = (noise.Squared().sum(1).mul(S(-0.5)) - logDiagonal.sum()).Plus(LogNormalizerOfStandardNormal);
        return (z, logProb);
    }

    public override Tensor LogProb(Tensor z)
    {
        CheckInput(z);
        // ε = L⁻¹(z − μ), solved as a triangular system.
        var eps = torch.linalg.solve_triangular(CholeskyFactor, (z - loc).t(), upper: false).t();
        return (eps.Squared().sum(1).mul(S(-0.5)) - logDiagonal.sum()).Plus(LogNormalizerOfStandardNormal);
    }
}
