using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tensors;

/// <summary>Argument checks on tensors shared by the public entry points (distributions, sequential likelihoods).</summary>
internal static class TensorArguments
{
    /// <summary>
    /// Throws unless <paramref name="value"/> is floating point: integer arithmetic would truncate the maths silently.
    /// The message names <paramref name="description"/> (default: the argument's name).
    /// </summary>
    public static Tensor RequireFloatingPoint(Tensor value, string paramName, string? description = null)
    {
        ArgumentNullException.ThrowIfNull(value, paramName);
        if (!value.is_floating_point())
            throw new ArgumentException($"{description ?? paramName} must be a floating-point tensor; got {value.dtype}.", paramName);
        return value;
    }

    /// <summary>The type floating-point tensors of mixed precision combine to (as a*x + b would), e.g. Float64 for Float32 with Float64.</summary>
    public static ScalarType CommonType(Tensor first, params Tensor?[] others)
    {
        var type = first.dtype;
        foreach (var other in others)
            if (other is not null) type = torch.promote_types(type, other.dtype);
        return type;
    }
}
