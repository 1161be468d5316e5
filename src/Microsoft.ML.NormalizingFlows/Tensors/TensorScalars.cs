using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tensors;

internal static class TensorScalars
{
    /// <summary>The value of a one-element tensor of any floating dtype as a double (item&lt;double&gt; needs Float64).</summary>
    public static double ToDouble(this Tensor scalar) =>
        scalar.dtype == ScalarType.Float64 ? scalar.item<double>() : scalar.to(ScalarType.Float64).item<double>();
}
