using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Sequential;

/// <summary>
/// The log-likelihood of a hidden Markov model by the forward algorithm, computed as a log-semiring product tree
/// (<see cref="LogSemiring.Reduce"/>): O(log T) rounds of batched S×S products instead of T dependent steps.
/// Everything is batched over leading dimensions (draws of the parameters) and differentiable.
/// </summary>
public static class HiddenMarkovModel
{
    /// <summary>log p(y_1 … y_T) = log Σ over state paths of π(s_1) e_1(s_1) Π_t A(s_{t−1}, s_t) e_t(s_t).</summary>
    /// <param name="logInitial">log π, [..., S].</param>
    /// <param name="logTransition">log A (rows: from, columns: to), [..., S, S].</param>
    /// <param name="logEmission">log e_t(s) = log p(y_t | state s), [..., T, S].</param>
    public static Tensor LogLikelihood(Tensor logInitial, Tensor logTransition, Tensor logEmission)
    {
        ArgumentNullException.ThrowIfNull(logInitial);
        ArgumentNullException.ThrowIfNull(logTransition);
        ArgumentNullException.ThrowIfNull(logEmission);
        long states = logInitial.shape[^1];
        if (logTransition.dim() < 2 || logTransition.shape[^1] != states || logTransition.shape[^2] != states)
            throw new ArgumentException($"logTransition must be [..., {states}, {states}] for {states} states; got [{string.Join(", ", logTransition.shape)}].", nameof(logTransition));
        if (logEmission.dim() < 2 || logEmission.shape[^1] != states || logEmission.shape[^2] == 0)
            throw new ArgumentException($"logEmission must be [..., T ≥ 1, {states}]; got [{string.Join(", ", logEmission.shape)}].", nameof(logEmission));
        long steps = logEmission.shape[^2];
        var first = logInitial.Plus(logEmission.select(-2, 0)); // α_1, [..., S]
        if (steps == 1) return torch.logsumexp(first, -1);
        // M_t(i, j) = log A(i, j) + log e_t(j) for t = 2 … T: [..., T − 1, S, S].
        var chain = logTransition.unsqueeze(-3).Plus(logEmission.narrow(-2, 1, steps - 1).unsqueeze(-2));
        var product = LogSemiring.Reduce(chain);
        return torch.logsumexp(LogSemiring.Multiply(first.unsqueeze(-2), product).squeeze(-2), -1);
    }
}
