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
        var firstAndRest = logEmission.split(new long[] { 1, steps - 1 }, -2);
        var first = logInitial.Plus(firstAndRest[0].squeeze(-2)); // α_1, [..., S]
        var firstShift = first.amax(new long[] { -1 }, keepdim: true).detach();
        var start = (first - firstShift).exp().unsqueeze(-2); // [..., 1, S]
        if (steps == 1) return start.sum(new long[] { -2, -1 }).log().Plus(firstShift.squeeze(-1));

        // M_t(i, j) = log A(i, j) + log e_t(j) for t = 2 … T: [..., T − 1, S, S], scaled to a largest entry of 1.
        var chain = logTransition.unsqueeze(-3).Plus(firstAndRest[1].unsqueeze(-2));
        var shift = chain.amax(new long[] { -2, -1 }, keepdim: true).detach();
        var product = (chain - shift).exp();
        var logScales = new List<Tensor> { shift.sum(new long[] { -3, -2, -1 }) };
        while (product.shape[^3] > 1)
        {
            long count = product.shape[^3], pairs = count / 2;
            Tensor? last = null;
            if (count % 2 == 1)
            {
                var split = product.split(new long[] { count - 1, 1 }, -3);
                (product, last) = (split[0], split[1]);
            }
            // unbind (not select/narrow): autograd joins the two halves' gradients with one stack.
            var paired = product.unflatten(product.dim() - 3, new long[] { pairs, 2 }).unbind(-3);
            var next = paired[0].matmul(paired[1]);
            // Rescale to a largest entry of 1 (kept ≥ 1e-300 so that a matrix that underflowed whole stays 0, not NaN).
            var rescale = next.amax(new long[] { -2, -1 }, keepdim: true).clamp_min(S(1e-300)).detach();
            logScales.Add(rescale.log().sum(new long[] { -3, -2, -1 }));
            next = next / rescale;
            product = last is null ? next : torch.cat(new[] { next, last }, -3);
        }
        var logScale = torch.stack(logScales, -1).sum(-1);
        var total = start.matmul(product.squeeze(-3)).sum(new long[] { -2, -1 }); // π̃ᵀ P 1
        return total.log().Plus(firstShift.squeeze(-1)).Plus(logScale);
    }
}
