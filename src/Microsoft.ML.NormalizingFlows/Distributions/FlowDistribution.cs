using Microsoft.ML.NormalizingFlows.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Distributions;

/// <summary>
/// q(z): a base distribution pushed through a transform. Sampling returns z and log q(z) in one pass:
/// log q(z_K) = log q₀(z₀) − Σ log|det ∂f_k/∂z_{k−1}|.
/// With no transform it is the base itself (mean-field or full-rank VI).
/// </summary>
public sealed class FlowDistribution : nn.Module
{
    private readonly BaseDistribution @base;
    private readonly FlowTransform? transform;

    public FlowDistribution(BaseDistribution baseDistribution, FlowTransform? transform = null) : base(nameof(FlowDistribution))
    {
        @base = baseDistribution ?? throw new ArgumentNullException(nameof(baseDistribution));
        if (transform is not null && transform.Dimension != baseDistribution.Dimension)
            throw new ArgumentException(
                $"The transform has dimension {transform.Dimension} but the base distribution has dimension {baseDistribution.Dimension}.", nameof(transform));
        this.transform = transform;
        RegisterComponents();
    }

    public int Dimension => @base.Dimension;

    /// <summary>How the flow was built, when it came from <see cref="FlowFactory"/>: enough to rebuild its
    /// architecture (persistence stores this beside the weights). Null for hand-assembled flows.</summary>
    public FlowSpec? Spec { get; internal set; }
    public BaseDistribution Base => @base;
    public FlowTransform? Transform => transform;

    /// <summary>True when <see cref="LogProb"/> can evaluate arbitrary points (the transform has an inverse).</summary>
    public bool CanEvaluateLogProb => transform is null || transform.HasInverse;

    /// <summary>The dtype and device the flow computes in.</summary>
    public (ScalarType DType, Device Device) Placement => @base.ParameterPlacement();

    /// <summary>Draws n samples: (z [n, d], log q(z) [n]), differentiable with respect to the parameters.</summary>
    public (Tensor Sample, Tensor LogProb) Sample(long count, Generator? generator = null)
    {
        var (z0, logQ0) = @base.Sample(count, generator);
        return Push(z0, logQ0);
    }

    /// <summary>Pushes standard-normal noise through the base and the transform (for common random numbers).</summary>
    public (Tensor Sample, Tensor LogProb) SampleFromNoise(Tensor noise)
    {
        var (z0, logQ0) = @base.SampleFromNoise(noise);
        return Push(z0, logQ0);
    }

    private (Tensor Sample, Tensor LogProb) Push(Tensor z0, Tensor logQ0)
    {
        if (transform is null) return (z0, logQ0);
        var (z, logDet) = transform.Forward(z0);
        return (z, logQ0 - logDet);
    }

    /// <summary>
    /// ∇_z log q(z) at the draws z made from <paramref name="noise"/>, with the parameters held constant, in closed
    /// form (no autograd); null unless both the base and the transform provide one.
    /// </summary>
    internal Tensor? ScoreFromNoise(Tensor noise)
    {
        using var noGrad = torch.no_grad();
        if (@base.ScoreFromNoise(noise) is not Tensor baseScore) return null;
        if (transform is null) return baseScore;
        return transform.PushScore(@base.SampleFromNoise(noise).Sample, baseScore);
    }

    /// <summary>
    /// <see cref="SampleFromNoise"/> and <see cref="ScoreFromNoise"/> in one pass where the transform can (planar on
    /// CPU): (z, log q(z), ∇_z log q(z) with parameters held constant, or null when there is no closed form).
    /// </summary>
    internal (Tensor Sample, Tensor LogProb, Tensor? Score) SampleFromNoiseWithScore(Tensor noise)
    {
        var (z0, logQ0) = @base.SampleFromNoise(noise);
        Tensor? baseScore;
        using (torch.no_grad()) baseScore = @base.ScoreFromNoise(noise);
        if (transform is null || baseScore is null)
        {
            var (z, logQ) = Push(z0, logQ0);
            return (z, logQ, transform is null ? baseScore : null);
        }
        var (output, logDet, score) = transform.ForwardWithScore(z0, baseScore);
        return (output, logQ0 - logDet, score);
    }

    /// <summary>log q(z) for given points z [n, d] → [n]; needs an invertible transform.</summary>
    public Tensor LogProb(Tensor z)
    {
        if (z.dim() != 2 || z.shape[1] != Dimension)
            throw new ArgumentException($"Expected points of shape [n, {Dimension}] but got [{string.Join(", ", z.shape)}].", nameof(z));
        if (transform is null) return @base.LogProb(z);
        if (!transform.HasInverse)
            throw new NotSupportedException($"{transform.GetType().Name} has no inverse, so log q cannot be evaluated at given points; use Sample, which returns log q of its draws.");
        var (z0, logDetInverse) = transform.Inverse(z);
        return @base.LogProb(z0).Plus(logDetInverse);
    }
}
