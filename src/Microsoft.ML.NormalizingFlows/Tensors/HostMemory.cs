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
    public static Span<double> Doubles(Tensor tensor) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, double>(tensor.bytes);
}
