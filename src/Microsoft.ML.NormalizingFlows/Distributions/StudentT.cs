using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Distributions;

/// <summary>
/// Independent Student-t coordinates with ν_i degrees of freedom (one per coordinate), learnable
/// (ν = exp of a free parameter) or fixed: a heavy-tailed base for flows (a Lipschitz flow on a Gaussian
/// base cannot produce heavy tails; see Jaini et al. 2020).
/// <para>
/// Sampling is reparameterized: t = ε / √(G / (ν/2)) with ε ~ N(0, 1) and G ~ Gamma(ν/2, 1), i.e.
/// ε / √(χ²_ν/ν). TorchSharp's <c>torch._standard_gamma</c> carries libtorch's implicit-reparameterization
/// gradient with respect to the shape (as PyTorch's Gamma.rsample), so ∂t/∂ν is exact and ν can be learned.
/// </para>
/// </summary>
public sealed class StudentT : BaseDistribution
{
    private readonly Parameter? logDof;
    // The field is named like its registered buffer: TorchSharp's .to(dtype/device) rebinds fields by that name
    // (a differently named field would keep the old, disposed tensor).
    private readonly Tensor? dof;

    /// <param name="dimension">d.</param>
    /// <param name="degreesOfFreedom">Initial (or fixed) ν &gt; 0.</param>
    /// <param name="learnable">Learn ν (one per coordinate) when true.</param>
    public StudentT(int dimension, double degreesOfFreedom = 5.0, bool learnable = true) : base(nameof(StudentT), dimension)
    {
        if (!(degreesOfFreedom > 0) || double.IsInfinity(degreesOfFreedom))
            throw new ArgumentOutOfRangeException(nameof(degreesOfFreedom), degreesOfFreedom, "The degrees of freedom must be positive and finite.");
        Learnable = learnable;
        if (learnable)
        {
            using var logInitial = Math.Log(degreesOfFreedom).ToScalar(); // held until the call returns (see RootedScalars)
            logDof = new Parameter(torch.full(dimension, logInitial));
        }
        else
        {
            using var initial = degreesOfFreedom.ToScalar();
            dof = torch.full(dimension, initial);
            register_buffer("dof", dof);
        }
        RegisterComponents();
    }

    public bool Learnable { get; }

    /// <summary>ν per coordinate [d].</summary>
    public Tensor DegreesOfFreedom => Learnable ? logDof!.exp() : dof!;

    public override (Tensor Sample, Tensor LogProb) Sample(long count, Generator? generator = null)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "The number of samples must be positive.");
        var (dtype, device) = ParameterPlacement();
        var eps = torch.randn(count, Dimension, dtype: dtype, device: device, generator: generator);
        return FromNoise(eps, generator);
    }

    /// <summary>
    /// ε are the normal parts of the draws; the χ² parts are drawn from TorchSharp's global generator
    /// (a Student-t draw needs more randomness than one normal per coordinate). For fully reproducible
    /// draws use <see cref="Sample"/> with a generator.
    /// </summary>
    public override (Tensor Sample, Tensor LogProb) SampleFromNoise(Tensor noise)
    {
        CheckInput(noise, nameof(noise));
        return FromNoise(noise, null);
    }

    private (Tensor, Tensor) FromNoise(Tensor eps, Generator? generator)
    {
        var nu = DegreesOfFreedom;
        var halfNu = (nu * S(0.5)).expand(eps.shape[0], Dimension);
        // Floor G so that a float32 underflow (tiny ν) cannot give an infinite draw.
        var gamma = torch._standard_gamma(halfNu, generator).clamp_min(S(1e-30));
        var t = eps * torch.sqrt(halfNu / gamma);
        return (t, LogProb(t));
    }

    public override Tensor LogProb(Tensor z)
    {
        CheckInput(z);
        var nu = DegreesOfFreedom;
        // log Γ((ν+1)/2) − log Γ(ν/2) is a small difference of large numbers for large ν (≈ ½ log(ν/2));
        // in float32 that costs ~1e-4 nats at ν = 10³ and ~0.1 at ν = 10⁶, so the [d] constant is computed in float64.
        var nu64 = nu.to(ScalarType.Float64);
        var constant = (torch.lgamma(nu64.Plus(1) * S(0.5)) - torch.lgamma(nu64 * S(0.5)) - S(0.5) * torch.log(nu64 * S(Math.PI))).to(z.dtype);
        return (constant - nu.Plus(1) * S(0.5) * torch.log1p(z.Squared() / nu)).sum(1);
    }
}
