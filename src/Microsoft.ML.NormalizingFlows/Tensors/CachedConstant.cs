using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tensors;

/// <summary>
/// A constant read on every evaluation (a target's data, table, mean or precision; a coupling layer's index
/// lists), kept exactly (float64, or int64 indices) and converted to the dtype and device it is needed in once,
/// then reused, instead of being rebuilt from managed arrays on every step of the training loop: write
/// <c>data.Like(z)</c> inside a log density. The cached copy is swapped whole, so concurrent readers (parallel
/// ML.NET cursors) at worst convert twice.
/// </summary>
public sealed class CachedConstant
{
    private readonly Tensor source;
    private Tensor? converted;

    /// <param name="values">Real values, row-major, kept in float64 and converted with <see cref="Like"/>.</param>
    /// <param name="shape">Their shape (none given: a vector).</param>
    public CachedConstant(double[] values, params long[] shape)
        : this(torch.tensor(values, shape.Length > 0 ? shape : new long[] { values.LongLength }, dtype: ScalarType.Float64)) { }

    /// <param name="indices">Integer indices (int64), moved between devices with <see cref="On"/>.</param>
    public CachedConstant(long[] indices) : this(torch.tensor(indices)) { }

    /// <param name="values">Real values in float32 (kept as given, in float64).</param>
    /// <param name="shape">Their shape (none given: a vector).</param>
    public CachedConstant(float[] values, params long[] shape) : this(values.Select(v => (double)v).ToArray(), shape) { }

    /// <summary>A copy of a tensor (floating values kept in float64, integers as int64), detached and outside any dispose scope.</summary>
    public static CachedConstant From(Tensor values)
    {
        ArgumentNullException.ThrowIfNull(values);
        using var noGrad = torch.no_grad();
        return new CachedConstant(values.is_floating_point() ? values.detach().to(ScalarType.Float64).clone() : values.detach().to(ScalarType.Int64).clone());
    }

    private CachedConstant(Tensor source) => this.source = source.DetachFromDisposeScope();

    /// <summary>Integer (index) data, kept as int64: use <see cref="On"/>.</summary>
    public bool IsInteger => !source.is_floating_point();

    /// <summary>The shape of the constant.</summary>
    public long[] Shape => source.shape;

    /// <summary>The constant in the dtype and on the device of <paramref name="points"/>.</summary>
    public Tensor Like(Tensor points) => Get(points.dtype, points.device);

    /// <summary>The constant in its own dtype (indices stay int64) on <paramref name="device"/>.</summary>
    public Tensor On(Device device) => Get(source.dtype, device);

    private Tensor Get(ScalarType dtype, Device device)
    {
        var t = converted;
        if (t is null || t.dtype != dtype || t.device.type != device.type || t.device.index != device.index)
        {
            t = source.to(dtype, device).DetachFromDisposeScope();
            converted = t;
        }
        return t;
    }
}
