using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Sequential;

/// <summary>
/// The linear recurrence x_t = a_t x_{t−1} + b_t (AR processes, GARCH variance recursions, exponential smoothing)
/// for every t at once, differentiable, as one autograd node instead of T dependent steps of tensor operations. On CPU
/// tensors it is one hand-written pass per series (the recursion itself, forward and adjoint); on other devices a
/// parallel (associative) scan: O(log T) rounds of a few whole-tensor operations. Time is the last dimension; leading
/// dimensions (draws, series) are batched.
/// </summary>
public static partial class LinearRecurrence
{
    /// <summary>Which implementation solves the recursion (both exact; tests hold each to the loop).</summary>
    internal enum Algorithm
    {
        /// <summary>The sequential pass on CPU tensors, the chunked scan elsewhere.</summary>
        Automatic,
        ChunkedScan,
        SequentialCpu,
    }

    /// <summary>
    /// x_t for t = 1 … T, with x_0 = <paramref name="initial"/> (zero when null).
    /// On CPU tensors, the recursion step by step in compiled code (<see cref="SequentialRecurrence"/>). Elsewhere, within chunks of <see cref="ChunkLength"/> steps the recursion has a closed form, x_c = P_c (x_start + Σ_{s ≤ c} b_s / P_s)
    /// with P_c = a_1 ⋯ a_c: one cumulative product, one cumulative sum and three multiplications for every chunk at
    /// once. The chunks' end values follow the same kind of recursion with coefficient P_C, solved the same way (a
    /// level per factor of C in T: three levels for T ≤ 4,096), and are carried back into the chunks by one
    /// multiply–add. O(T) work in about ten whole-tensor operations per level. The gradient is not left to autograd
    /// (which would record every one of those operations): the adjoint of a linear recurrence is the same recurrence
    /// run backwards, g_t = ∂L/∂x_t + a_{t+1} g_{t+1}, so the backward pass is one more solve plus ∂L/∂b_t = g_t,
    /// ∂L/∂a_t = g_t x_{t−1} and ∂L/∂x_0 = a_1 g_1. (The gradient itself is not differentiable again.)
    /// </summary>
    /// <param name="a">Coefficients a_t, [..., T] (broadcast against <paramref name="b"/>); [..., 1] for one coefficient per series.</param>
    /// <param name="b">Offsets b_t, [..., T].</param>
    /// <param name="initial">x_0, [...] (the shape of one time slice), or null for 0.</param>
    public static Tensor Scan(Tensor a, Tensor b, Tensor? initial = null) => Scan(a, b, initial, Algorithm.Automatic);

    internal static Tensor Scan(Tensor a, Tensor b, Tensor? initial, Algorithm algorithm)
    {
        TensorArguments.RequireFloatingPoint(a, nameof(a));
        TensorArguments.RequireFloatingPoint(b, nameof(b));
        if (initial is not null) TensorArguments.RequireFloatingPoint(initial, nameof(initial));
        // One type for all three, as a_t x_{t−1} + b_t would promote them (Solve then works in float64 whatever it is).
        var type = TensorArguments.CommonType(a, b, initial);
        (a, b, initial) = (a.to_type(type), b.to_type(type), initial?.to_type(type));
        if (b.dim() == 0) throw new ArgumentException("b must have a time dimension (its last).", nameof(b));
        if (!Broadcastable(a.shape, b.shape))
            throw new ArgumentException($"a [{string.Join(", ", a.shape)}] and b [{string.Join(", ", b.shape)}] do not broadcast to one shape.", nameof(a));
        var both = torch.broadcast_tensors(a, b);
        if (initial is not null && !Broadcastable(initial.shape, both[1].shape[..^1]))
            throw new ArgumentException($"initial [{string.Join(", ", initial.shape)}] must broadcast to one time slice [{string.Join(", ", both[1].shape[..^1])}].", nameof(initial));
        var (coefficient, offset) = (both[0], both[1]);
        if (offset.shape[^1] == 0) return offset;
        // A coefficient constant in time (AR(1), GARCH's β, exponential smoothing) stays [..., 1]: its powers are computed
        // once per chunk length, not once per step. The shapes alone decide, so no value is read back from the device.
        if (a.dim() == 0 || a.shape[^1] == 1) coefficient = coefficient.narrow(-1, 0, 1);
        var startValue = initial is null ? null : torch.broadcast_to(initial, offset.shape[..^1]);
        bool sequential = algorithm == Algorithm.SequentialCpu || algorithm == Algorithm.Automatic && offset.device_type == DeviceType.CPU;
        return sequential ? SequentialRecurrence.apply(coefficient, offset, startValue!) : RecurrenceFunction.apply(coefficient, offset, startValue!);
    }

    /// <summary>Steps per chunk: the chunk's products P_c must stay within float64's range for every |a| ≥ <see cref="SmallestCoefficient"/>.</summary>
    private const long ChunkLength = 16;

    /// <summary>
    /// Coefficients smaller in magnitude are computed as ±1e-16 (so that 1/P_c is finite; P_c ≥ 1e-256 over a chunk): x_t then
    /// differs from the exact value by at most 1e-16 |b_{t−1}|, below float64's resolution of x_t whenever |x_t| ≳ |b_{t−1}|.
    /// The gradient uses the coefficients as given.
    /// </summary>
    private const double SmallestCoefficient = 1e-16;

    /// <summary>The recursion as one autograd node: the forward solve, and the backward as the reversed solve.</summary>
    private sealed class RecurrenceFunction : torch.autograd.SingleTensorFunction<RecurrenceFunction>
    {
        public override string Name => "LinearRecurrence";

        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var (a, b, x0) = ((Tensor)vars[0], (Tensor)vars[1], vars[2] as Tensor);
            var x = Solve(a, b, x0);
            ctx.save_for_backward(new List<Tensor> { a.detach(), x.detach(), x0?.detach()! });
            return x;
        }

        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad)
        {
            var saved = ctx.get_saved_variables();
            var (a, x) = (saved[0], saved[1]);
            var x0 = saved.Count > 2 && saved[2] is { IsInvalid: false } s ? s : null;
            long steps = x.shape[^1];
            bool constant = a.shape[^1] == 1;
            // g_t = G_t + a_{t+1} g_{t+1}, g_T = G_T: in reversed time a recursion from zero whose coefficient at reversed step k
            // is a_{T−k+1} (the first is never used; 1 keeps the chunk products tame).
            var reversedCoefficient = constant ? a : torch.nn.functional.pad(a.flip(-1), new long[] { 1, -1 }, value: 1);
            var g = Solve(reversedCoefficient, grad.flip(-1), null).flip(-1);
            var previous = x0 is null
                ? torch.nn.functional.pad(x, new long[] { 1, -1 })
                : torch.cat(new[] { x0.unsqueeze(-1), x.narrow(-1, 0, steps - 1) }, -1); // x_{t−1}
            var gradA = g * previous;
            if (constant) gradA = gradA.sum(-1, keepdim: true);
            var gradX0 = x0 is null ? null : g.select(-1, 0) * a.select(-1, 0);
            return new List<Tensor> { gradA, g, gradX0! };
        }
    }

    /// <summary>x for coefficients a ([..., T] or [..., 1]), offsets b ([..., T]) and x_0 ([...] or null), without autograd.</summary>
    private static Tensor Solve(Tensor a, Tensor b, Tensor? x0)
    {
        // float64 inside whatever the caller's type: chunk products of 16 small coefficients leave float32's range.
        var type = b.dtype;
        if (type != ScalarType.Float64)
            return Solve(a.to_type(ScalarType.Float64), b.to_type(ScalarType.Float64), x0?.to_type(ScalarType.Float64)).to_type(type);
        long steps = b.shape[^1];
        bool constant = a.shape[^1] == 1;
        long length = Math.Min(steps, ChunkLength), chunks = (steps + length - 1) / length, padding = chunks * length - steps;
        var safe = a.abs().clamp_min_(S(SmallestCoefficient)).copysign_(a); // ±1e-16 with a's sign (and a zero's)
        // Zeros after the end change nothing before it; a coefficient of 1 there keeps the products finite.
        Tensor products; // P_c within each chunk: [..., K, C], or [..., 1, C] for a constant coefficient
        if (constant) products = safe.expand(safe.shape[..^1].Append(length).ToArray()).cumprod(-1).unsqueeze(-2);
        else
        {
            var padded = padding == 0 ? safe : torch.nn.functional.pad(safe, new long[] { 0, padding }, value: 1);
            products = padded.unflatten(padded.dim() - 1, new long[] { chunks, length }).cumprod(-1);
        }
        var blocks = (padding == 0 ? b : torch.nn.functional.pad(b, new long[] { 0, padding }))
            .unflatten(b.dim() - 1, new long[] { chunks, length });                                  // [..., K, C]
        var local = (blocks * products.reciprocal()).cumsum(-1).mul_(products);                    // each chunk from x = 0
        Tensor before;                                                                              // x just before each chunk, [..., K]
        if (chunks == 1) before = x0 is null ? torch.zeros_like(local.select(-1, 0)) : x0.unsqueeze(-1);
        else
        {
            // The chunks' end values: X_k = P_C(k) X_{k−1} + local_k(C), X_0 = x_0.
            var endCoefficient = products.select(-1, length - 1);                                  // [..., K] or [..., 1]
            var ends = Solve(endCoefficient, local.select(-1, length - 1), x0);
            before = x0 is null
                ? torch.nn.functional.pad(ends, new long[] { 1, -1 })
                : torch.cat(new[] { x0.unsqueeze(-1), ends.narrow(-1, 0, chunks - 1) }, -1);
        }
        var x = local.addcmul_(products, before.unsqueeze(-1), S(1)).flatten(-2);
        return padding == 0 ? x : x.narrow(-1, 0, steps);
    }

    private static bool Broadcastable(long[] x, long[] y)
    {
        for (int i = 1; i <= Math.Min(x.Length, y.Length); i++)
            if (x[^i] != y[^i] && x[^i] != 1 && y[^i] != 1) return false;
        return true;
    }
}
