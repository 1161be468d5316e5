using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Sequential;

/// <summary>
/// Matrix products in the log semiring, (X ⊗ Y)_ij = log Σ_k exp(X_ik + Y_kj): chains of them are the HMM forward
/// algorithm, and because ⊗ is associative a chain of T matrices reduces in O(log T) rounds of batched products
/// (a tree) instead of T dependent steps. Matrices are the last two dimensions; a chain runs along the third-last.
/// </summary>
public static class LogSemiring
{
    /// <summary>X ⊗ Y for [..., S, S] (or [..., R, S] ⊗ [..., S, C]), batched over the leading dimensions.</summary>
    public static Tensor Multiply(Tensor x, Tensor y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (x.dim() < 2 || y.dim() < 2 || x.shape[^1] != y.shape[^2])
            throw new ArgumentException($"Log-semiring product of [{string.Join(", ", x.shape)}] and [{string.Join(", ", y.shape)}]: the inner sizes must match.", nameof(y));
        return torch.logsumexp(x.unsqueeze(-1).Plus(y.unsqueeze(-3)), -2);
    }

    /// <summary>M_1 ⊗ M_2 ⊗ … ⊗ M_T for a chain [..., T, S, S], by pairwise products (a tree of depth ⌈log₂T⌉).</summary>
    public static Tensor Reduce(Tensor chain)
    {
        RequireChain(chain);
        var m = chain;
        while (m.shape[^3] > 1)
        {
            long count = m.shape[^3], pairs = count / 2;
            // [..., 2P, S, S] → [..., P, 2, S, S]: even and odd members of each pair (TorchSharp's unflatten wants a non-negative dim).
            var paired = m.narrow(-3, 0, 2 * pairs).unflatten(m.dim() - 3, new long[] { pairs, 2 });
            var product = Multiply(paired.select(-3, 0), paired.select(-3, 1));
            m = count % 2 == 0 ? product : torch.cat(new[] { product, m.narrow(-3, count - 1, 1) }, -3);
        }
        return m.select(-3, 0);
    }

    /// <summary>Every prefix M_1 ⊗ … ⊗ M_t, t = 1 … T, for a chain [..., T, S, S] (Hillis–Steele: ⌈log₂T⌉ rounds), e.g. for filtering.</summary>
    public static Tensor Scan(Tensor chain)
    {
        RequireChain(chain);
        var prefix = chain;
        long steps = chain.shape[^3];
        for (long span = 1; span < steps; span *= 2)
        {
            var tail = Multiply(prefix.narrow(-3, 0, steps - span), prefix.narrow(-3, span, steps - span));
            prefix = torch.cat(new[] { prefix.narrow(-3, 0, span), tail }, -3);
        }
        return prefix;
    }

    private static void RequireChain(Tensor chain)
    {
        ArgumentNullException.ThrowIfNull(chain);
        if (chain.dim() < 3 || chain.shape[^1] != chain.shape[^2] || chain.shape[^3] == 0)
            throw new ArgumentException($"A chain of square matrices [..., T ≥ 1, S, S] was expected; got [{string.Join(", ", chain.shape)}].", nameof(chain));
    }
}
