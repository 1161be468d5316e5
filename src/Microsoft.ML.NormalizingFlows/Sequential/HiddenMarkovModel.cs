using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Sequential;

/// <summary>
/// The log-likelihood of a hidden Markov model by the forward algorithm, computed as a product tree over time:
/// O(log T) rounds of batched S×S matrix products instead of T dependent steps. Everything is batched over leading
/// dimensions (draws of the parameters) and differentiable.
/// </summary>
public static class HiddenMarkovModel
{
    /// <summary>
    /// log p(y_1 … y_T) = log Σ over state paths of π(s_1) e_1(s_1) Π_t A(s_{t−1}, s_t) e_t(s_t).
    /// The tree multiplies <i>scaled probability</i> matrices, exp(M − max M), with ordinary matrix products, and
    /// keeps the scales' logs aside: a matrix product is one BLAS call where the log-semiring product
    /// (<see cref="LogSemiring.Multiply"/>) is a broadcast sum and a log-sum-exp over an [S, S, S] tensor, about four
    /// times dearer. The scales are constants of the value (log(Σ e^(x − c)) + c is the same for any c), so they are
    /// detached, and the result equals the log-space forward algorithm; an entry more than ~700 nats below the
    /// largest of its matrix underflows to 0, which changes the likelihood by less than e^−700 of itself.
    /// </summary>
    /// <param name="logInitial">log π, [..., S].</param>
    /// <param name="logTransition">log A (rows: from, columns: to), [..., S, S].</param>
    /// <param name="logEmission">log e_t(s) = log p(y_t | state s), [..., T, S].</param>
    public static Tensor LogLikelihood(Tensor logInitial, Tensor logTransition, Tensor logEmission)
    {
        ArgumentNullException.ThrowIfNull(logInitial);
        ArgumentNullException.ThrowIfNull(logTransition);
        ArgumentNullException.ThrowIfNull(logEmission);
        if (logInitial.dim() < 1 || logInitial.shape[^1] == 0)
            throw new ArgumentException($"logInitial must be [..., S ≥ 1]; got [{string.Join(", ", logInitial.shape)}].", nameof(logInitial));
        long states = logInitial.shape[^1];
        if (logTransition.dim() < 2 || logTransition.shape[^1] != states || logTransition.shape[^2] != states)
            throw new ArgumentException($"logTransition must be [..., {states}, {states}] for {states} states; got [{string.Join(", ", logTransition.shape)}].", nameof(logTransition));
        if (logEmission.dim() < 2 || logEmission.shape[^1] != states || logEmission.shape[^2] == 0)
            throw new ArgumentException($"logEmission must be [..., T ≥ 1, {states}]; got [{string.Join(", ", logEmission.shape)}].", nameof(logEmission));
        long steps = logEmission.shape[^2];
        var first = logInitial.Plus(logEmission.select(-2, 0)); // α_1, [..., S]
        var firstShift = first.amax(new long[] { -1 }, keepdim: true).detach();
        var start = (first - firstShift).exp().unsqueeze(-2); // [..., 1, S]
        if (steps == 1) return start.sum(new long[] { -2, -1 }).log().Plus(firstShift.squeeze(-1));

        // M_t(i, j) = log A(i, j) + log e_t(j) for t = 2 … T: [..., T − 1, S, S], scaled to a largest entry of 1.
        var chain = logTransition.unsqueeze(-3).Plus(logEmission.narrow(-2, 1, steps - 1).unsqueeze(-2));
        var shift = chain.amax(new long[] { -2, -1 }, keepdim: true).detach();
        var product = (chain - shift).exp();
        var logScale = shift.squeeze(-1).squeeze(-1); // [..., T − 1]
        while (product.shape[^3] > 1)
        {
            long count = product.shape[^3], pairs = count / 2;
            int timeDim = (int)product.dim() - 3; // TorchSharp's unflatten wants a non-negative dim
            var paired = product.narrow(-3, 0, 2 * pairs).unflatten(timeDim, new long[] { pairs, 2 });
            var scalePairs = logScale.narrow(-1, 0, 2 * pairs).unflatten(timeDim, new long[] { pairs, 2 });
            var next = paired.select(-3, 0).matmul(paired.select(-3, 1));
            // Rescale to a largest entry of 1 (kept ≥ 1e-300 so that a matrix that underflowed whole stays 0, not NaN).
            var rescale = next.amax(new long[] { -2, -1 }, keepdim: true).clamp_min(S(1e-300)).detach();
            next = next / rescale;
            var nextScale = scalePairs.sum(-1).Plus(rescale.squeeze(-1).squeeze(-1).log());
            product = count % 2 == 0 ? next : torch.cat(new[] { next, product.narrow(-3, count - 1, 1) }, -3);
            logScale = count % 2 == 0 ? nextScale : torch.cat(new[] { nextScale, logScale.narrow(-1, count - 1, 1) }, -1);
        }
        var total = start.matmul(product.select(-3, 0)).sum(new long[] { -2, -1 }); // π̃ᵀ P 1
        return total.log().Plus(firstShift.squeeze(-1)).Plus(logScale.squeeze(-1));
    }
}
