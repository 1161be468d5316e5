using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Sequential;

/// <summary>
/// The log-likelihood of a hidden Markov model by the forward algorithm, and its gradient by the forward–backward
/// algorithm, as one autograd node instead of T dependent steps of tensor operations: on CPU tensors a compiled pass
/// per draw (<see cref="SequentialForwardBackward"/>), elsewhere a product tree over time (O(log T) rounds of
/// batched S×S matrix products). Everything is batched over leading dimensions (draws of the parameters) and
/// differentiable.
/// </summary>
public static partial class HiddenMarkovModel
{
    /// <summary>Which implementation computes the likelihood and its gradient (both are exact; tests hold each to the loop).</summary>
    internal enum Algorithm
    {
        /// <summary>The sequential pass on CPU tensors, the product tree elsewhere.</summary>
        Automatic,
        ProductTree,
        SequentialCpu,
    }

    /// <summary>
    /// log p(y_1 … y_T) = log Σ over state paths of π(s_1) e_1(s_1) Π_t A(s_{t−1}, s_t) e_t(s_t).
    /// <para>Value: the tree multiplies <i>scaled probability</i> matrices M_t = exp(log A + log e_t − max), rescaling every
    /// product to a largest entry of 1 and keeping the scales' logs aside (an entry more than ~700 nats below the largest
    /// of its matrix underflows to 0, which changes the likelihood by less than e^−700 of itself).</para>
    /// <para>Gradient: not left to autograd, which would record every product of the tree. The derivatives of a log
    /// partition function are expectations: ∂/∂log e_t(s) = P(s_t = s | y), ∂/∂log A(i, j) = Σ_t P(s_{t−1} = i, s_t = j | y),
    /// ∂/∂log π(s) = P(s_1 = s | y). The backward pass walks the stored tree from the root down, giving every step
    /// its forward vector (∝ α_{t−1}) and backward vector (∝ β_t) in O(log T) rounds, and forms the pairwise posteriors
    /// ξ_t(i, j) ∝ α_{t−1}(i) M_t(i, j) β_t(j), each normalized to 1, so no scale needs tracking. (The gradient itself
    /// is not differentiable again.)</para>
    /// <para>Layout: time first and the draws last ([T, S, S, N]), so that every product, reduction and rescaling runs
    /// over contiguous rows of N draws rather than over 2×2 blocks (libtorch's batched matrix product and its
    /// reductions are slow on many tiny matrices).</para>
    /// <para>That is the tree, the path on devices other than the CPU. CPU tensors take the sequential pass, the same
    /// quantities (scaled forward recursion, normalized posteriors) computed step by step.</para>
    /// </summary>
    /// <param name="logInitial">log π, [..., S].</param>
    /// <param name="logTransition">log A (rows: from, columns: to), [..., S, S].</param>
    /// <param name="logEmission">log e_t(s) = log p(y_t | state s), [..., T, S].</param>
    /// <returns>The log-likelihood, shaped as the broadcast of the three inputs' leading dimensions.</returns>
    public static Tensor LogLikelihood(Tensor logInitial, Tensor logTransition, Tensor logEmission) =>
        LogLikelihood(logInitial, logTransition, logEmission, Algorithm.Automatic);

    internal static Tensor LogLikelihood(Tensor logInitial, Tensor logTransition, Tensor logEmission, Algorithm algorithm)
    {
        TensorArguments.RequireFloatingPoint(logInitial, nameof(logInitial));
        TensorArguments.RequireFloatingPoint(logTransition, nameof(logTransition));
        TensorArguments.RequireFloatingPoint(logEmission, nameof(logEmission));
        // One type for all three (mixed precision promotes), so that each input's gradient comes back in its own type.
        var type = TensorArguments.CommonType(logInitial, logTransition, logEmission);
        (logInitial, logTransition, logEmission) = (logInitial.to_type(type), logTransition.to_type(type), logEmission.to_type(type));
        if (logInitial.dim() < 1 || logInitial.shape[^1] == 0)
            throw new ArgumentException($"logInitial must be [..., S ≥ 1]; got [{string.Join(", ", logInitial.shape)}].", nameof(logInitial));
        long states = logInitial.shape[^1];
        if (logTransition.dim() < 2 || logTransition.shape[^1] != states || logTransition.shape[^2] != states)
            throw new ArgumentException($"logTransition must be [..., {states}, {states}] for {states} states; got [{string.Join(", ", logTransition.shape)}].", nameof(logTransition));
        if (logEmission.dim() < 2 || logEmission.shape[^1] != states || logEmission.shape[^2] == 0)
            throw new ArgumentException($"logEmission must be [..., T ≥ 1, {states}]; got [{string.Join(", ", logEmission.shape)}].", nameof(logEmission));
        long steps = logEmission.shape[^2];
        var batch = BroadcastBatch(logInitial.shape[..^1], logTransition.shape[..^2], logEmission.shape[..^2]);
        long draws = batch.Aggregate(1L, (x, y) => x * y);
        // One flat batch of N draws for the tree (autograd sums the gradients of broadcast inputs back to their shapes).
        var pi = logInitial.expand(batch.Append(states).ToArray()).reshape(draws, states);
        var a = logTransition.expand(batch.Concat(new[] { states, states }).ToArray()).reshape(draws, states, states);
        var e = logEmission.expand(batch.Concat(new[] { steps, states }).ToArray()).reshape(draws, steps, states);
        bool sequential = algorithm == Algorithm.SequentialCpu || algorithm == Algorithm.Automatic && e.device_type == DeviceType.CPU;
        return (sequential ? SequentialForwardBackward.apply(pi, a, e) : ForwardAlgorithm.apply(pi, a, e)).reshape(batch);
    }

    /// <summary>The forward algorithm as one autograd node over the product tree (see <see cref="LogLikelihood(Tensor, Tensor, Tensor)"/>).</summary>
    private sealed class ForwardAlgorithm : torch.autograd.SingleTensorFunction<ForwardAlgorithm>
    {
        public override string Name => "HiddenMarkovModel.LogLikelihood";

        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var (pi, a, e) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2]);
            long draws = e.shape[0];
            var emission = e.permute(1, 2, 0).contiguous();   // [T, S, N]
            var transition = a.permute(1, 2, 0).contiguous(); // [S, S, N]
            var first = pi.t().Plus(emission[0]);             // log α_1, [S, N]
            // Shifts of −∞ (a first or later observation impossible in every state) become 0, so that its probabilities are
            // exp(−∞) = 0 and the log-likelihood −∞, not NaN from −∞ − (−∞).
            var firstShift = first.amax(new long[] { 0 }, keepdim: true).nan_to_num_(0, 0, 0);
            var start = first.sub_(firstShift).exp_();        // α_1 scaled to a largest entry of 1
            var logScale = firstShift.squeeze(0);             // [N]
            var saved = new List<Tensor> { start };
            long steps = emission.shape[0];
            if (steps == 1)
            {
                ctx.save_for_backward(saved);
                return start.sum(new long[] { 0 }).log_().add_(logScale, S(1));
            }
            // M_t(i, j) = A(i, j) e_t(j) for t = 2 … T, scaled to a largest entry of 1, is kept as its two factors (the chain
            // [T − 1, S, S, N] is never formed). M_t's largest log entry is max_j (log e_t(j) + max_i log A(i, j)), so
            // Â = exp(log A − column max) has a largest entry of 1 in every column, and ê_t = exp(log e_t + column max − shift_t)
            // a largest entry of 1 at the column where M_t's largest is.
            // A state no state moves to (a column of log 0 = −∞, e.g. a start state) must give exp(−∞ − 0) = 0, not NaN.
            var columnMax = transition.amax(new long[] { 0 }, keepdim: true).nan_to_num_(0, 0, 0); // [1, S, N]
            var scaledTransition = (transition - columnMax).exp_();                            // [S, S, N]
            var later = emission.narrow(0, 1, steps - 1).Plus(columnMax);                      // [T − 1, S, N]
            var shift = later.amax(new long[] { 1 }, keepdim: true).nan_to_num_(0, 0, 0);      // [T − 1, 1, N]
            logScale = logScale.Plus(shift.sum(new long[] { 0, 1 }));
            var scaledEmission = later.sub_(shift).exp_();                                     // ê_t, [T − 1, S, N]
            saved.Add(scaledTransition);
            saved.Add(scaledEmission);
            var level = FirstProducts(scaledTransition, scaledEmission);
            // Every product rescaled to a largest entry of 1 (a product that underflowed whole stays 0, not NaN); the scales'
            // logs are summed at the end.
            var rescales = new List<Tensor>();
            Tensor Rescaled(Tensor product)
            {
                var rescale = AtLeastTiny(product.amax(new long[] { 1, 2 }, keepdim: true)); // [K, 1, 1, N]
                rescales.Add(rescale.view(product.shape[0], draws));
                return product.div_(rescale);
            }
            long chainLength = steps - 1;
            level = chainLength == 1 ? level : chainLength % 2 == 0 ? Rescaled(level)
                : torch.cat(new[] { Rescaled(level.narrow(0, 0, chainLength / 2)), level.narrow(0, chainLength / 2, 1) }, 0);
            saved.Add(level);
            while (level.shape[0] > 1)
            {
                long count = level.shape[0];
                var halves = Pairs(level);
                var product = Rescaled(MatrixProduct(halves[0], halves[1]));
                level = count % 2 == 0 ? product : torch.cat(new[] { product, level.narrow(0, count - 1, 1) }, 0);
                saved.Add(level);
            }
            if (rescales.Count > 0) logScale = logScale.Plus(torch.cat(rescales, 0).log_().sum(new long[] { 0 }));
            ctx.save_for_backward(saved);
            // α̃_1ᵀ P 1 for the root P.
            return (start.unsqueeze(1) * level[0]).sum(new long[] { 0, 1 }).log_().add_(logScale, S(1));
        }

        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad)
        {
            var saved = ctx.get_saved_variables();
            var start = saved[0];                                            // [S, N]
            long states = start.shape[0], draws = start.shape[1];
            var forwardVector = Normalized(start.clone()).unsqueeze(0);      // entering the root: α_1, [1, S, N]
            if (saved.Count == 1)
            {
                var posterior = forwardVector.squeeze(0) * grad;            // P(s_1 | y) · ∂L/∂ℓ, [S, N]
                return new List<Tensor> { posterior.t(), torch.zeros(draws, states, states, dtype: start.dtype, device: start.device), posterior.t().unsqueeze(1) };
            }
            var (transition, emission) = (saved[1], saved[2]);               // Â [S, S, N], ê [T − 1, S, N]: M_t = Â diag(ê_t)
            var backwardVector = torch.ones_like(forwardVector);             // leaving the root: 1
            // From the root down: a left child is entered as its parent is and left through its right sibling; a right
            // child is entered through its left sibling and left as its parent is. A level's odd last node was carried up
            // unchanged, and so are its vectors. saved[3] is the level of pair products, saved[^1] the root.
            for (int l = saved.Count - 2; l >= 3; l--)
            {
                var halves = Pairs(saved[l]);
                (forwardVector, backwardVector) = Children(forwardVector, backwardVector, saved[l].shape[0],
                    f => VectorMatrix(f, halves[0]), r => MatrixVector(halves[1], r));
            }
            // Down to the chain's own steps, whose matrices are never formed: f M_t = (f Â) ê_t and M_t r = Â (ê_t r), with
            // Â one matrix per draw ([1, S, S, N] broadcasts over the steps).
            var shared = transition.unsqueeze(0);
            long chainLength = emission.shape[0];
            if (chainLength > 1)
            {
                var halves = Pairs(emission);
                (forwardVector, backwardVector) = Children(forwardVector, backwardVector, chainLength,
                    f => VectorMatrix(f, shared).mul_(halves[0]), r => MatrixVector(shared, halves[1] * r));
            }
            // ξ_t(i, j) = α_{t−1}(i) Â(i, j) ê_t(j) β_t(j) / Z_t, Z_t its sum over (i, j) (any scale of α and β cancels).
            // Marginals: P(s_t = j | y) = (α_{t−1} Â)(j) ê_t(j) β_t(j) / Z_t. Σ_t ξ_t(i, j) = Â(i, j) Σ_t w_t α_{t−1}(i) (ê_t β_t)(j): an
            // outer product per step summed over t (as a batched matrix product over the draws it was 5x slower: tiny matrices).
            var leaving = emission * backwardVector;                                             // ê_t β_t, [T − 1, S, N]
            var marginals = VectorMatrix(forwardVector, shared).mul_(leaving);          // ∝ P(s_t | y), t = 2 … T
            var weights = AtLeastTiny(marginals.sum(1, keepdim: true)).reciprocal_().mul_(grad); // ∂L/∂ℓ / Z_t, [T − 1, 1, N]
            marginals.mul_(weights);
            var weightedForward = forwardVector * weights;                                       // w_t α_{t−1}(i)
            var expectedCounts = (weightedForward.unsqueeze(2) * leaving.unsqueeze(1)).sum(new long[] { 0 }).mul_(transition).permute(2, 0, 1); // Σ_t ξ_t, [N, S, S]
            var firstMarginal = MatrixVector(shared, leaving.narrow(0, 0, 1)).mul_(weightedForward.narrow(0, 0, 1)); // P(s_1 | y), [1, S, N]
            var gradEmission = torch.cat(new[] { firstMarginal, marginals }, 0).permute(2, 0, 1);
            return new List<Tensor> { firstMarginal.squeeze(0).t(), expectedCounts, gradEmission };
        }

        /// <summary>
        /// The vectors entering and leaving the <paramref name="count"/> nodes of a level, from those of the level above:
        /// <paramref name="throughLeft"/> gives f P for each pair's left node, <paramref name="throughRight"/> P r for its right one.
        /// </summary>
        private static (Tensor Entering, Tensor Leaving) Children(Tensor entering, Tensor leaving, long count,
            Func<Tensor, Tensor> throughLeft, Func<Tensor, Tensor> throughRight)
        {
            long pairs = count / 2;
            var parentIn = entering.narrow(0, 0, pairs);
            var parentOut = leaving.narrow(0, 0, pairs);
            var nextIn = torch.stack(new[] { parentIn, Normalized(throughLeft(parentIn)) }, 1).flatten(0, 1);
            var nextOut = torch.stack(new[] { Normalized(throughRight(parentOut)), parentOut }, 1).flatten(0, 1);
            if (count % 2 == 1)
            {
                nextIn = torch.cat(new[] { nextIn, entering.narrow(0, pairs, 1) }, 0);
                nextOut = torch.cat(new[] { nextOut, leaving.narrow(0, pairs, 1) }, 0);
            }
            return (nextIn, nextOut);
        }

        /// <summary>
        /// The chain's first level without forming the chain: for each pair (M_a, M_b), M_a M_b (i, j) =
        /// Σ_m ê_a(m) Â(i, m) Â(m, j) · ê_b(j), and an odd last step's M_t itself, unscaled: [⌈(T − 1)/2⌉, S, S, N].
        /// </summary>
        private static Tensor FirstProducts(Tensor transition, Tensor emission)
        {
            long chainLength = emission.shape[0], states = transition.shape[0];
            if (chainLength == 1) return transition.unsqueeze(0) * emission.unsqueeze(1);
            var halves = Pairs(emission); // ê_a, ê_b: [pairs, S, N]
            var firsts = halves[0].unsqueeze(1).unsqueeze(1).unbind(3);                                     // ê_a(m): [pairs, 1, 1, N]
            var columns = transition.unsqueeze(1).unbind(2);                                               // Â(·, m): [S, 1, N]
            var rows = transition.unsqueeze(0).unbind(1);                                                  // Â(m, ·): [1, S, N]
            var product = firsts[0] * (columns[0] * rows[0]).unsqueeze(0);
            for (int m = 1; m < states; m++) product.addcmul_(firsts[m], (columns[m] * rows[m]).unsqueeze(0), S(1));
            product.mul_(halves[1].unsqueeze(1));
            if (chainLength % 2 == 0) return product;
            var last = transition.unsqueeze(0) * emission.narrow(0, chainLength - 1, 1).unsqueeze(1);
            return torch.cat(new[] { product, last }, 0);
        }

        /// <summary>The first and second members of each pair along dimension 0 (an odd last member left out): two [K / 2, ...] views.</summary>
        private static Tensor[] Pairs(Tensor items)
        {
            long pairs = items.shape[0] / 2;
            return items.narrow(0, 0, 2 * pairs).unflatten(0, new long[] { pairs, 2 }).unbind(1);
        }

        private static Tensor Normalized(Tensor vectors) => vectors.mul_(AtLeastTiny(vectors.sum(-2, keepdim: true)).reciprocal_());

        /// <summary>
        /// Scales and normalizers kept at least the type's smallest normal number, so that dividing by one that is 0
        /// (everything underflowed, or an observation impossible in every state) leaves the zeros 0 instead of making NaN.
        /// (A fixed 1e-300 would be 0 in float32.)
        /// </summary>
        private static Tensor AtLeastTiny(Tensor values) => values.clamp_min_(S(torch.finfo(values.dtype).tiny));

        // The products below are unrolled over the S terms of the inner sum: S multiply–adds over whole [K, S, S, N] tensors
        // ran faster than one broadcast product with a sum over a middle dimension, and than batched matrix products.

        /// <summary>C = L R for matrices [K, S, S, N] (draws last): C(·, j) = Σ_k L(·, k) R(k, j).</summary>
        private static Tensor MatrixProduct(Tensor left, Tensor right)
        {
            var columns = left.unsqueeze(3).unbind(2);  // L(·, k): [K, S, 1, N]
            var rows = right.unsqueeze(1).unbind(2);    // R(k, ·): [K, 1, S, N]
            var product = columns[0] * rows[0];
            for (int k = 1; k < columns.Length; k++) product.addcmul_(columns[k], rows[k], S(1));
            return product;
        }

        /// <summary>Row vectors times matrices: (f P)(j) = Σ_i f(i) P(i, j), f [K, S, N], P [K, S, S, N] (or [1, S, S, N], one per draw for every row).</summary>
        private static Tensor VectorMatrix(Tensor vectors, Tensor matrices)
        {
            var entries = vectors.unsqueeze(2).unbind(1); // f(i): [K, 1, N]
            var rows = matrices.unbind(1);                // P(i, ·): [K, S, N]
            var result = rows[0] * entries[0];
            for (int i = 1; i < rows.Length; i++) result.addcmul_(rows[i], entries[i], S(1));
            return result;
        }

        /// <summary>Matrices times column vectors: (P r)(i) = Σ_j P(i, j) r(j), P [K, S, S, N] (or [1, S, S, N]), r [K, S, N].</summary>
        private static Tensor MatrixVector(Tensor matrices, Tensor vectors)
        {
            var entries = vectors.unsqueeze(2).unbind(1); // r(j): [K, 1, N]
            var columns = matrices.unbind(2);             // P(·, j): [K, S, N]
            var result = columns[0] * entries[0];
            for (int j = 1; j < columns.Length; j++) result.addcmul_(columns[j], entries[j], S(1));
            return result;
        }
    }

    private static long[] BroadcastBatch(long[] initial, long[] transition, long[] emission)
    {
        int rank = Math.Max(initial.Length, Math.Max(transition.Length, emission.Length));
        var batch = new long[rank];
        for (int i = 1; i <= rank; i++)
        {
            long size = 1;
            foreach (var (shape, name) in new[] { (initial, "logInitial"), (transition, "logTransition"), (emission, "logEmission") })
            {
                long dim = i <= shape.Length ? shape[^i] : 1;
                if (dim != 1 && size != 1 && dim != size)
                    throw new ArgumentException($"The leading (batch) dimensions of logInitial [{string.Join(", ", initial)}], logTransition [{string.Join(", ", transition)}] and logEmission [{string.Join(", ", emission)}] do not broadcast.", name);
                if (dim != 1) size = dim;
            }
            batch[rank - i] = size;
        }
        return batch;
    }
}
