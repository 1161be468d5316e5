using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Distributions;

/// <summary>
/// A distribution over R^d that can draw reparameterized samples (gradients flow from the sample back
/// to its parameters) and evaluate its log density. Used as a flow's base and, alone, as the classic
/// mean-field / full-rank VI families.
/// </summary>
public abstract class BaseDistribution : nn.Module
{
    protected BaseDistribution(string name, int dimension) : base(name)
    {
        if (dimension <= 0)
            throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The dimension of a distribution must be positive.");
        Dimension = dimension;
    }

    public int Dimension { get; }

    /// <summary>Draws n reparameterized samples: (z [n, d], log q(z) [n]).</summary>
    public virtual (Tensor Sample, Tensor LogProb) Sample(long count, Generator? generator = null)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "The number of samples must be positive.");
        var (dtype, device) = ParameterPlacement();
        var eps = torch.randn(count, Dimension, dtype: dtype, device: device, generator: generator);
        return SampleFromNoise(eps);
    }

    /// <summary>Maps standard-normal noise ε [n, d] to samples and their log density in one pass.</summary>
    public abstract (Tensor Sample, Tensor LogProb) SampleFromNoise(Tensor noise);

    /// <summary>log q(z) for z [n, d] → [n].</summary>
    public abstract Tensor LogProb(Tensor z);

    /// <summary>The dtype and device samples are drawn in (those of the parameters, or of a buffer).</summary>
    protected internal virtual (ScalarType DType, Device Device) ParameterPlacement()
    {
        foreach (var p in parameters()) return (p.dtype, p.device);
        foreach (var buffer in buffers()) return (buffer.dtype, buffer.device);
        return (ScalarType.Float32, torch.CPU);
    }

    /// <summary>
    /// ∇_z log q(z) at z = the sample made from <paramref name="noise"/> by <see cref="SampleFromNoise"/>, with the
    /// parameters held constant (no gradient); null when the distribution has no closed form for it.
    /// </summary>
    internal virtual Tensor? ScoreFromNoise(Tensor noise) => null;

    /// <summary>−½ d log 2π.</summary>
    protected double LogNormalizerOfStandardNormal => -0.5 * Dimension * Math.Log(2 * Math.PI);

    protected void CheckInput(Tensor z, string argumentName = "z")
    {
        if (z.dim() != 2 || z.shape[1] != Dimension)
            throw new ArgumentException(
                $"{GetType().Name} expects a batch of shape [B, {Dimension}] but got [{string.Join(", ", z.shape)}].", argumentName);
    }
}
