using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tensors;

/// <summary>
/// CPU tensors' memory as spans, for the hand-written CPU kernels (Sequential/): reading and writing elements in place,
/// without copying them into managed arrays (a copy per call cost more than some kernels themselves, and arrays of
/// hundreds of KB are large-object allocations that set off full garbage collections when made every step).
/// A span does not keep its tensor alive: a kernel holds the tensor (GC.KeepAlive) until it is done with the span.
/// </summary>
internal static class HostMemory
{
    /// <summary>The tensor as contiguous float64 CPU memory: itself when it already is, else a converted copy.</summary>
    public static Tensor Float64(Tensor tensor) => tensor.to(ScalarType.Float64, torch.CPU).contiguous();

    /// <summary>A contiguous float64 CPU tensor's elements, in place.</summary>
    public static Span<double> Doubles(Tensor tensor) => Elements<double>(tensor);

    /// <summary>float64 values per SIMD vector (<see cref="System.Numerics.Vector{T}"/>): 4 with AVX2.</summary>
    public static int Lanes => System.Numerics.Vector<double>.Count;

    /// <summary><paramref name="count"/> rounded up to whole vectors, for kernels that keep draws innermost.</summary>
    public static int PaddedToLanes(int count) => (count + Lanes - 1) / Lanes * Lanes;

    /// <summary>The vector of <see cref="Lanes"/> values starting at <paramref name="at"/>.</summary>
    public static System.Numerics.Vector<double> Load(ReadOnlySpan<double> values, int at) => new(values.Slice(at, Lanes));

    /// <summary>The value of a one-element CPU tensor, read in place (no operation) when it is float64 or float32.</summary>
    public static double Single(Tensor tensor)
    {
        if (tensor.numel() != 1) throw new ArgumentException($"Expected a tensor of one element but got shape [{string.Join(", ", tensor.shape)}].", nameof(tensor));
        if (tensor.dtype == ScalarType.Float64) return Elements<double>(tensor)[0];
        if (tensor.dtype == ScalarType.Float32) return Elements<float>(tensor)[0];
        using var converted = Float64(tensor);
        return Doubles(converted)[0];
    }

    /// <summary>A contiguous CPU tensor's elements as <typeparamref name="T"/> (which must be its element type), in place.</summary>
    public static Span<T> Elements<T>(Tensor tensor) where T : unmanaged => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, T>(tensor.bytes);
}
