using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tensors;

/// <summary>
/// Tensor operations that TorchSharp 0.107 implements with a hidden temporary <see cref="Scalar"/>, rewritten to
/// pass only <see cref="RootedScalars"/>: <c>a + b</c> is <c>add(b, 1)</c> with a temporary 1, <c>square()</c> is
/// <c>pow(2)</c> with a temporary 2, <c>c − a</c> is <c>neg().add(c)</c>, softplus converts β and its threshold.
/// A temporary can be finalized by another thread's garbage collection while libtorch still reads it (the
/// "INTERNAL ASSERT FAILED at c10/core/Scalar.h" abort), so the library uses these instead; a test scans the
/// library's IL for calls that would make one.
/// </summary>
public static class ScalarSafeOps
{
    /// <summary>a + b.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, S(1));

    /// <summary>a + c.</summary>
    public static Tensor Plus(this Tensor a, double c) => a.add(S(c), S(1));

    /// <summary>a + c with an integer c (keeps integer tensors integer).</summary>
    public static Tensor Plus(this Tensor a, long c) => a.add(S(c), S(1));

    /// <summary>a += b, in place.</summary>
    public static Tensor PlusInPlace(this Tensor a, Tensor b) => a.add_(b, S(1));

    /// <summary>c − a.</summary>
    public static Tensor SubtractedFrom(this Tensor a, double c) => a.neg().add(S(c), S(1));

    /// <summary>a², elementwise.</summary>
    public static Tensor Squared(this Tensor a) => a.pow(S(2));

    /// <summary>log(1 + eᵃ), computed as logaddexp(a, 0).</summary>
    public static Tensor Softplus(this Tensor a) => torch.logaddexp(a, torch.zeros_like(a));
}
