using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>
/// A probability distribution over tensors for writing log densities (priors and likelihoods), in the manner of
/// NumPyro's and zuko's <c>log_prob</c>: batched by broadcasting the parameters against the value, differentiable
/// in value and parameters, float32 or float64 (parameters follow the value's dtype and device).
/// <see cref="LogProb"/> returns one log density per element of the broadcast batch shape; multivariate
/// distributions (<see cref="EventDimensions"/> &gt; 0) consume the value's last dimension(s). Outside the support
/// the log density is −∞.
/// </summary>
public abstract class Distribution
{
    /// <summary>How many trailing dimensions of a value make one draw (0 for scalar distributions, 1 for vectors, 2 for matrices).</summary>
    public virtual int EventDimensions => 0;

    /// <summary>log p(value), batched.</summary>
    public abstract Tensor LogProb(Tensor value);

    /// <summary>A parameter given as a number: a 0-dim float64 tensor, cast to the value's dtype and device when used.</summary>
    protected static Tensor Parameter(double value) => torch.tensor(value, ScalarType.Float64);

    /// <summary>A finite number parameter (a location, a bound); anything else would make every log density NaN.</summary>
    protected static Tensor Finite(double value, string name) => double.IsFinite(value) ? Parameter(value)
        : throw new ArgumentOutOfRangeException(name, value, $"Parameter '{name}' must be finite.");

    /// <summary>A positive, finite number parameter (a scale, a rate, a shape, a concentration).</summary>
    protected static Tensor Positive(double value, string name) => value > 0 && double.IsFinite(value) ? Parameter(value)
        : throw new ArgumentOutOfRangeException(name, value, $"Parameter '{name}' must be positive and finite.");

    /// <summary>Checks a parameter tensor is floating point; integers would truncate the arithmetic.</summary>
    protected static Tensor Parameter(Tensor value, string name) => TensorArguments.RequireFloatingPoint(value, name, $"Parameter '{name}'");

    /// <summary>The parameter on the value's dtype and device (no copy when they already match).</summary>
    protected static Tensor Like(Tensor parameter, Tensor value) =>
        parameter.dtype == value.dtype && parameter.device == value.device ? parameter : parameter.to(value.dtype, value.device);

    /// <summary>A floating value for the arithmetic: integer counts become the parameters' float dtype.</summary>
    protected static Tensor AsFloat(Tensor value, Tensor reference) =>
        value.is_floating_point() ? value : value.to(reference.is_floating_point() ? reference.dtype : ScalarType.Float32);

    /// <summary>log p where <paramref name="inSupport"/> holds, −∞ elsewhere. The −∞ is one broadcast element, not a
    /// filled copy of log p: for a likelihood over many rows and draws that copy was a pass over the largest tensor.</summary>
    protected static Tensor Restrict(Tensor logProb, Tensor inSupport) =>
        torch.where(inSupport, logProb, torch.tensor(double.NegativeInfinity, logProb.dtype, logProb.device));

    /// <summary>½ log 2π.</summary>
    protected static readonly double HalfLogTwoPi = 0.5 * Math.Log(2 * Math.PI);
}
