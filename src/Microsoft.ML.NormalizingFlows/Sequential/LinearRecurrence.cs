using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Sequential;

/// <summary>
/// The linear recurrence x_t = a_t x_{t−1} + b_t (AR processes, GARCH variance recursions, exponential smoothing)
/// for every t at once, as a parallel (associative) scan: O(log T) rounds of a few whole-tensor operations instead
/// of T dependent steps, so inside a log density it costs about 6 log₂T tensor operations, not 3T, and autograd
/// differentiates it as it would the loop. Time is the last dimension; leading dimensions (draws, series) are batched.
/// </summary>
public static class LinearRecurrence
{
    /// <summary>
    /// x_t for t = 1 … T, with x_0 = <paramref name="initial"/> (zero when null).
    /// Each round doubles the span that the pair (A_t, B_t) summarizes: x_t = A_t x_{t−span} + B_t (Hillis–Steele).
    /// </summary>
    /// <param name="a">Coefficients a_t, [..., T] (broadcast against <paramref name="b"/>).</param>
    /// <param name="b">Offsets b_t, [..., T].</param>
    /// <param name="initial">x_0, [...] (the shape of one time slice), or null for 0.</param>
    public static Tensor Scan(Tensor a, Tensor b, Tensor? initial = null)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (b.dim() == 0) throw new ArgumentException("b must have a time dimension (its last).", nameof(b));
        if (!Broadcastable(a.shape, b.shape))
            throw new ArgumentException($"a [{string.Join(", ", a.shape)}] and b [{string.Join(", ", b.shape)}] do not broadcast to one shape.", nameof(a));
        var both = torch.broadcast_tensors(a, b);
        if (initial is not null && !Broadcastable(initial.shape, both[1].shape[..^1]))
            throw new ArgumentException($"initial [{string.Join(", ", initial.shape)}] must broadcast to one time slice [{string.Join(", ", both[1].shape[..^1])}].", nameof(initial));
        var (coefficient, offset) = (both[0], both[1]);
        long steps = offset.shape[^1];
        for (long span = 1; span < steps; span *= 2)
        {
            var later = coefficient.narrow(-1, span, steps - span);
            var offsetTail = (later * offset.narrow(-1, 0, steps - span)).Plus(offset.narrow(-1, span, steps - span));
            var coefficientTail = later * coefficient.narrow(-1, 0, steps - span);
            offset = torch.cat(new[] { offset.narrow(-1, 0, span), offsetTail }, -1);
            coefficient = torch.cat(new[] { coefficient.narrow(-1, 0, span), coefficientTail }, -1);
        }
        // Now x_t = A_t x_0 + B_t with A_t = a_1 ⋯ a_t.
        return initial is null ? offset : offset.Plus(coefficient * initial.unsqueeze(-1));
    }

    private static bool Broadcastable(long[] x, long[] y)
    {
        for (int i = 1; i <= Math.Min(x.Length, y.Length); i++)
            if (x[^i] != y[^i] && x[^i] != 1 && y[^i] != 1) return false;
        return true;
    }
}
