using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tensors;

/// <summary>
/// Scalars that live for the whole process, for constants in tensor expressions: write <c>x * S(0.5)</c>
/// instead of <c>x * 0.5</c>.
/// <para>
/// Why: TorchSharp 0.107 turns <c>x * 0.5</c> into a temporary <see cref="Scalar"/> (a native c10::Scalar with a
/// finalizer) and hands libtorch its raw handle without keeping the managed object alive. When another thread
/// triggers a garbage collection during that native call, the finalizer can free the c10::Scalar while libtorch
/// reads it: an intermittent "INTERNAL ASSERT FAILED at c10/core/Scalar.h" abort or a garbled value. A scalar
/// held here is reachable until the process ends, so it is never finalized. (It also saves a native allocation
/// and a finalizer per use.)
/// </para>
/// <para>
/// Only for constants: every distinct value is kept forever. Values computed at run time belong in a field of
/// the object that uses them (also never finalized while that object is in use) or in a tensor.
/// </para>
/// </summary>
public static class RootedScalars
{
    private static readonly ConcurrentDictionary<double, Scalar> Doubles = new();
    private static readonly ConcurrentDictionary<long, Scalar> Integers = new();

    /// <summary>A floating-point scalar that is never finalized.</summary>
    public static Scalar S(double value) => Doubles.GetOrAdd(value, static v => v.ToScalar());

    /// <summary>An integer scalar that is never finalized (keeps integer tensors integer).</summary>
    public static Scalar S(long value) => Integers.GetOrAdd(value, static v => v.ToScalar());
}
