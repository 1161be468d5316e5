using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Targets;

/// <summary>
/// A constant a target reads inside <see cref="Target.LogDensity"/> (a table, a mean, a precision matrix),
/// converted to the points' dtype and device once and then reused, instead of being rebuilt from managed
/// arrays on every evaluation of the training loop. The cached copy is swapped whole, so concurrent readers
/// at worst convert twice.
/// </summary>
internal sealed class TargetConstant
{
    private readonly Tensor source;
    private Tensor? converted;

    /// <param name="values">The values, row-major.</param>
    /// <param name="shape">Their shape (none given: a vector).</param>
    public TargetConstant(double[] values, params long[] shape) =>
        source = torch.tensor(values, shape.Length > 0 ? shape : new long[] { values.LongLength }, dtype: ScalarType.Float64).DetachFromDisposeScope();

    /// <summary>The constant in the dtype and on the device of <paramref name="points"/>.</summary>
    public Tensor Like(Tensor points)
    {
        var t = converted;
        if (t is null || t.dtype != points.dtype || t.device.type != points.device.type || t.device.index != points.device.index)
        {
            t = source.to(points.dtype, points.device).DetachFromDisposeScope();
            converted = t;
        }
        return t;
    }
}
