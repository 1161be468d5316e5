using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Sequential;

/// <summary>
/// The linear recurrence x_t = a_t x_{t−1} + b_t (AR processes, GARCH variance recursions, exponential smoothing)
/// for every t at once, as a parallel (associative) scan: O(log T) rounds of a few whole-tensor operations instead
/// of T dependent steps, and autograd differentiates it as it would the loop. Time is the last dimension; leading
/// dimensions (draws, series) are batched.
/// </summary>
public static class LinearRecurrence
{
    /// <summary>
    /// x_t for t = 1 … T, with x_0 = <paramref name="initial"/> (zero when null).
    /// Work-efficient odd–even recursion: neighbouring steps are composed in pairs, (a, b)(a′, b′) = (a′a, a′b + b′),
    /// which halves the series; the half-length series is solved the same way, giving x at every second step, and
    /// each step in between takes one multiply–add from its predecessor. The total work is about 2T multiply–adds
    /// over ⌈log₂T⌉ levels. (A doubling scan, Hillis–Steele, has the same depth but touches all T elements on every
    /// level, T log T in all, and its cost then grew almost linearly in T.) Pairs are split with unbind/split
    /// rather than index views, so that autograd's backward joins the gradient pieces with one stack/cat instead of
    /// filling a zero tensor per view.
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
        if (steps == 0) return offset;
        var startValue = initial is null ? null : torch.broadcast_to(initial, offset.shape[..^1]);
        // A coefficient constant in time (AR(1), GARCH's β, exponential smoothing) is the common case and has a cheaper,
        // constant-depth solution; the shapes alone decide, so no value is read back from the device.
        if (a.dim() == 0 || a.shape[^1] == 1) return ConstantCoefficient(coefficient.narrow(-1, 0, 1), offset, startValue);
        if (startValue is not null)
        {
            // Fold x_0 into the first offset, b′_1 = b_1 + a_1 x_0, so that the recursion starts from zero.
            var head = offset.split(new long[] { 1, steps - 1 }, -1);
            var firstCoefficient = coefficient.narrow(-1, 0, 1);
            offset = torch.cat(new[] { torch.addcmul(head[0], firstCoefficient, startValue.unsqueeze(-1), S(1)), head[1] }, -1);
        }
        return FromZero(coefficient, offset);
    }

    /// <summary>Series up to this length are solved by one matrix product; longer ones in chunks of this length.</summary>
    private const long ChunkLength = 32;

    /// <summary>
    /// x_t = a x_{t−1} + b_t with one a per series ([..., 1]): x_t = Σ_{s ≤ t} a^(t−s) b_s + a^t x_0, a product with a
    /// lower-triangular Toeplitz matrix of powers. Within chunks of <see cref="ChunkLength"/> steps that matrix is
    /// applied to every chunk by one batched matrix product; the chunks' end values follow the same recursion with
    /// coefficient a^C, solved the same way, and are carried into the chunks by one multiply–add. About twenty
    /// tensor operations whatever T (up to C³ = 32,768 steps at depth three), and C multiply–adds per element.
    /// Powers come from a running product (cumprod), so zero and negative coefficients are exact.
    /// </summary>
    private static Tensor ConstantCoefficient(Tensor a, Tensor b, Tensor? initial)
    {
        long steps = b.shape[^1];
        long length = Math.Min(steps, ChunkLength);
        // a^1 … a^length, [..., length].
        var powers = a.expand(a.shape[..^1].Append(length).ToArray()).cumprod(-1);
        // Toeplitz L[t, s] = a^(t − s) for t ≥ s, else 0: windows of [0 … 0, 1, a, a², …] read backwards.
        var lead = powers.shape[..^1];
        var zeros = torch.zeros(lead.Append(length - 1).ToArray(), dtype: b.dtype, device: b.device);
        var ones = torch.ones(lead.Append(1L).ToArray(), dtype: b.dtype, device: b.device);
        var padded = torch.cat(new[] { zeros, ones, powers.narrow(-1, 0, length - 1) }, -1); // [..., 2·length − 1]
        var toeplitz = padded.unfold(-1, length, 1).flip(-1);                                   // [..., length, length]
        if (steps <= ChunkLength)
        {
            var x = toeplitz.matmul(b.unsqueeze(-1)).squeeze(-1);
            return initial is null ? x : torch.addcmul(x, powers, initial.unsqueeze(-1), S(1));
        }
        long chunks = (steps + ChunkLength - 1) / ChunkLength;
        var padding = chunks * ChunkLength - steps; // zeros after the end change nothing before it
        var blocks = (padding == 0 ? b : torch.nn.functional.pad(b, new long[] { 0, padding }))
            .unflatten(b.dim() - 1, new long[] { chunks, ChunkLength });                        // [..., K, C]
        var local = blocks.matmul(toeplitz.transpose(-1, -2));                                  // each chunk from x = 0
        // The value at each chunk's end: X_k = a^C X_{k−1} + local_k(C), X_{−1} = x_0.
        var ends = ConstantCoefficient(powers.narrow(-1, ChunkLength - 1, 1), local.select(-1, ChunkLength - 1), initial);
        var before = initial is null
            ? torch.nn.functional.pad(ends, new long[] { 1, -1 })
            : torch.cat(new[] { initial.unsqueeze(-1), ends.narrow(-1, 0, chunks - 1) }, -1); // X_{k−1}, [..., K]
        var full = torch.addcmul(local, powers.unsqueeze(-2), before.unsqueeze(-1), S(1));      // + a^(c+1) X_{k−1}
        var flat = full.flatten(-2);
        return padding == 0 ? flat : flat.narrow(-1, 0, steps);
    }

    /// <summary>The recursion from x_0 = 0 (see <see cref="Scan"/>).</summary>
    private static Tensor FromZero(Tensor a, Tensor b)
    {
        long steps = b.shape[^1];
        if (steps == 1) return b;
        long pairs = steps / 2;
        Tensor? lastA = null, lastB = null;
        if (steps % 2 == 1)
        {
            var splitA = a.split(new long[] { steps - 1, 1 }, -1);
            var splitB = b.split(new long[] { steps - 1, 1 }, -1);
            (a, lastA, b, lastB) = (splitA[0], splitA[1], splitB[0], splitB[1]);
        }
        long timeDim = b.dim() - 1; // TorchSharp's unflatten wants a non-negative dim
        var pairA = a.unflatten(timeDim, new long[] { pairs, 2 }).unbind(-1); // (a_{2k−1}, a_{2k}) in 1-based steps
        var pairB = b.unflatten(timeDim, new long[] { pairs, 2 }).unbind(-1);
        // x at the second step of each pair, from the composed pairs (a′a, a′b + b′).
        var ends = FromZero(pairA[1] * pairA[0], torch.addcmul(pairB[1], pairA[1], pairB[0], S(1)));
        // x at the first step of each pair: a x_(previous pair's end) + b, with x = 0 before the first pair.
        var previousEnds = torch.nn.functional.pad(ends, new long[] { 1, -1 });
        var starts = torch.addcmul(pairB[0], pairA[0], previousEnds, S(1));
        var x = torch.stack(new[] { starts, ends }, -1).flatten(-2);
        return lastA is null ? x : torch.cat(new[] { x, torch.addcmul(lastB!, lastA, ends.narrow(-1, pairs - 1, 1), S(1)) }, -1);
    }

    private static bool Broadcastable(long[] x, long[] y)
    {
        for (int i = 1; i <= Math.Min(x.Length, y.Length); i++)
            if (x[^i] != y[^i] && x[^i] != 1 && y[^i] != 1) return false;
        return true;
    }
}
