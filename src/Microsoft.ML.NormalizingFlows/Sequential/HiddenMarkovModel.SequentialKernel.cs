using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using System.Runtime.CompilerServices;
using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Sequential;

public static partial class HiddenMarkovModel
{
    /// <summary>
    /// The forward algorithm and its forward–backward gradient as one hand-written pass per draw, for CPU tensors.
    /// Why by hand: the work is a few T · S² multiply–adds per draw, little next to what a tensor call costs. The product
    /// tree (<see cref="ForwardAlgorithm"/>) spends about 25 tensor calls per level, and libtorch's per-call cost made
    /// them most of an HMM's training step on CPU. On other devices (CUDA) the tree's few large calls are what pays, so
    /// it stays the path there. No package offers an HMM forward–backward; the exponentials go through
    /// <see cref="TensorPrimitives"/> (vectorized), a whole series at a time.
    /// <para>Numerics, in float64 whatever the input type: Rabiner's scaling (α_t normalized to sum 1 each step; the
    /// log-likelihood is the sum of the normalizers' logs, taken from their running product whenever it nears the end
    /// of float64's range), with A's columns and each step's emissions shifted by their largest log, so nothing
    /// overflows and a step's normalizer is at least (α̂_{t−1} Â)(j) for the likeliest emission's state j. As in the tree,
    /// a transition more than ~700 nats below its column's largest underflows to 0. The backward pass normalizes β and
    /// each ξ_t to 1, as the tree does, so no scale is tracked. A draw whose likelihood is 0 (log −∞) gets a zero
    /// gradient: there is nothing to move probability towards.</para>
    /// </summary>
    private sealed class SequentialForwardBackward : torch.autograd.SingleTensorFunction<SequentialForwardBackward>
    {
        public override string Name => "HiddenMarkovModel.LogLikelihood (sequential CPU)";

        /// <summary>Per-state scratch vectors up to this many states live on the stack.</summary>
        private const int SmallStates = 128;

        /// <summary>The running product of normalizers is folded into the log-likelihood outside [1e-200, 1e200].</summary>
        private const double FoldBelow = 1e-200, FoldAbove = 1e200;

        // Compiled optimized at once: the loops run once per training step, too rarely for tiered compilation to promote
        // them soon.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var (pi, a, e) = (HostMemory.Float64((Tensor)vars[0]), HostMemory.Float64((Tensor)vars[1]), HostMemory.Float64((Tensor)vars[2]));
            int n = (int)e.shape[0], t = (int)e.shape[1], s = (int)e.shape[2];
            ReadOnlySpan<double> logInitial = HostMemory.Doubles(pi), logTransition = HostMemory.Doubles(a), logEmission = HostMemory.Doubles(e);
            // Saved for the backward pass: α̂_t (normalized), Â = exp(log A − column max), ê_t = exp(log e_t + column max − shift_t)
            // and each draw's log-likelihood, as tensors written in place (HostMemory).
            var alphaTensor = torch.empty(n, t, s, dtype: ScalarType.Float64);
            var scaledTransitionTensor = torch.empty(n, s, s, dtype: ScalarType.Float64);
            var scaledEmissionTensor = torch.zeros(n, t, s, dtype: ScalarType.Float64); // t = 1 has no ê
            var logLikelihoodTensor = torch.empty(n, dtype: ScalarType.Float64);
            Span<double> alpha = HostMemory.Doubles(alphaTensor), scaledTransition = HostMemory.Doubles(scaledTransitionTensor),
                scaledEmission = HostMemory.Doubles(scaledEmissionTensor), logLikelihood = HostMemory.Doubles(logLikelihoodTensor);
            Span<double> columnMax = s <= SmallStates ? stackalloc double[s] : new double[s];
            for (int d = 0; d < n; d++)
            {
                int transitionAt = d * s * s, rowAt = d * t * s;
                for (int j = 0; j < s; j++)
                {
                    double max = double.NegativeInfinity;
                    for (int i = 0; i < s; i++) max = Math.Max(max, logTransition[transitionAt + i * s + j]);
                    columnMax[j] = double.IsNegativeInfinity(max) ? 0 : max; // a state nothing moves to: its column stays 0, not NaN
                    for (int i = 0; i < s; i++) scaledTransition[transitionAt + i * s + j] = logTransition[transitionAt + i * s + j] - columnMax[j];
                }
                var transition = scaledTransition.Slice(transitionAt, s * s);
                TensorPrimitives.Exp(transition, transition);
                // t = 1: α_1 ∝ π e_1.
                double shift = double.NegativeInfinity;
                for (int j = 0; j < s; j++) shift = Math.Max(shift, logInitial[d * s + j] + logEmission[rowAt + j]);
                if (double.IsNegativeInfinity(shift)) shift = 0;
                var first = alpha.Slice(rowAt, s);
                for (int j = 0; j < s; j++) first[j] = logInitial[d * s + j] + logEmission[rowAt + j] - shift;
                TensorPrimitives.Exp(first, first);
                double result = shift, product = Normalize(first);
                // ê_t for t = 2 … T, all at once: log e_t + column max − shift_t, shift_t its largest entry.
                var emission = scaledEmission.Slice(rowAt + s, (t - 1) * s);
                for (int step = 1; step < t; step++)
                {
                    int at = rowAt + step * s;
                    shift = double.NegativeInfinity;
                    for (int j = 0; j < s; j++) shift = Math.Max(shift, logEmission[at + j] + columnMax[j]);
                    if (double.IsNegativeInfinity(shift)) shift = 0;
                    result += shift;
                    for (int j = 0; j < s; j++) scaledEmission[at + j] = logEmission[at + j] + columnMax[j] - shift;
                }
                TensorPrimitives.Exp(emission, emission);
                for (int step = 1; step < t; step++)
                {
                    var previous = alpha.Slice(rowAt + (step - 1) * s, s);
                    var current = alpha.Slice(rowAt + step * s, s);
                    var scaled = scaledEmission.Slice(rowAt + step * s, s);
                    // α_t(j) = (α̂_{t−1} Â)(j) ê_t(j)
                    for (int j = 0; j < s; j++)
                    {
                        double sum = 0;
                        for (int i = 0; i < s; i++) sum += previous[i] * transition[i * s + j];
                        current[j] = sum * scaled[j];
                    }
                    product *= Normalize(current);
                    if (product < FoldBelow || product > FoldAbove)
                    {
                        result += Math.Log(product);
                        product = 1;
                    }
                }
                logLikelihood[d] = result + Math.Log(product);
            }
            GC.KeepAlive(pi); GC.KeepAlive(a); GC.KeepAlive(e); // their memory was read through spans, which do not hold them
            ctx.save_for_backward(new List<Tensor> { alphaTensor, scaledTransitionTensor, scaledEmissionTensor, logLikelihoodTensor });
            var input = (Tensor)vars[2];
            return logLikelihoodTensor.to(input.dtype, input.device, copy: true);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad)
        {
            var saved = ctx.get_saved_variables();
            var (type, device) = (grad.dtype, grad.device); // the output's, i.e. the inputs' common type
            int n = (int)saved[0].shape[0], t = (int)saved[0].shape[1], s = (int)saved[0].shape[2];
            ReadOnlySpan<double> alpha = HostMemory.Doubles(saved[0]), scaledTransition = HostMemory.Doubles(saved[1]), scaledEmission = HostMemory.Doubles(saved[2]), logLikelihood = HostMemory.Doubles(saved[3]);
            var upstreamTensor = HostMemory.Float64(grad);
            ReadOnlySpan<double> upstream = HostMemory.Doubles(upstreamTensor);
            // The gradients are written straight into the tensors' memory (zeros where a draw gets none).
            var gradInitialTensor = torch.zeros(n, s, dtype: ScalarType.Float64);
            var gradTransitionTensor = torch.zeros(n, s, s, dtype: ScalarType.Float64);
            var gradEmissionTensor = torch.zeros(n, t, s, dtype: ScalarType.Float64);
            Span<double> gradInitial = HostMemory.Doubles(gradInitialTensor), gradTransition = HostMemory.Doubles(gradTransitionTensor), gradEmission = HostMemory.Doubles(gradEmissionTensor);
            Span<double> beta = s <= SmallStates ? stackalloc double[s] : new double[s];
            Span<double> leaving = s <= SmallStates ? stackalloc double[s] : new double[s];
            Span<double> previousBeta = s <= SmallStates ? stackalloc double[s] : new double[s];
            Span<double> marginal = s <= SmallStates ? stackalloc double[s] : new double[s];
            Span<double> weightedForward = s <= SmallStates ? stackalloc double[s] : new double[s];
            const double tiny = 2.2250738585072014e-308; // the smallest normal float64: a normalizer that underflowed gives zeros, not NaN
            for (int d = 0; d < n; d++)
            {
                double g = upstream[d];
                if (double.IsNegativeInfinity(logLikelihood[d]) || g == 0) continue; // no gradient (zeros already)
                int rowAt = d * t * s;
                var transition = scaledTransition.Slice(d * s * s, s * s);
                // Σ_t ξ_t(i, j) = Â(i, j) Σ_t w_t α̂_{t−1}(i) (ê_t β̃_t)(j): the sum is gathered here, Â applied once at the end.
                var counts = gradTransition.Slice(d * s * s, s * s);
                beta.Fill(1.0 / s);
                for (int step = t - 1; step >= 1; step--)
                {
                    var previous = alpha.Slice(rowAt + (step - 1) * s, s);
                    var scaled = scaledEmission.Slice(rowAt + step * s, s);
                    // ξ_t(i, j) ∝ α̂_{t−1}(i) Â(i, j) ê_t(j) β̃_t(j), Z_t its sum; β̃_{t−1}(i) ∝ Σ_j Â(i, j) ê_t(j) β̃_t(j).
                    for (int j = 0; j < s; j++) { leaving[j] = scaled[j] * beta[j]; marginal[j] = 0; }
                    double z = 0, betaTotal = 0;
                    for (int i = 0; i < s; i++)
                    {
                        double row = 0, forward = previous[i];
                        for (int j = 0; j < s; j++)
                        {
                            double through = transition[i * s + j] * leaving[j];
                            row += through;
                            marginal[j] += forward * through;
                        }
                        previousBeta[i] = row;
                        betaTotal += row;
                        z += forward * row;
                    }
                    double weight = g / Math.Max(z, tiny);
                    for (int i = 0; i < s; i++)
                    {
                        double forward = previous[i] * weight;
                        for (int j = 0; j < s; j++) counts[i * s + j] += forward * leaving[j];
                    }
                    var gradAt = gradEmission.Slice(rowAt + step * s, s);
                    for (int j = 0; j < s; j++) gradAt[j] = marginal[j] * weight;
                    double inverse = 1 / Math.Max(betaTotal, tiny);
                    for (int i = 0; i < s; i++) beta[i] = previousBeta[i] * inverse;
                }
                TensorPrimitives.Multiply(counts, transition, counts);
                // P(s_1 | y) ∝ α̂_1 β̃_1: the gradient of log π and of log e_1.
                double first = 0;
                for (int j = 0; j < s; j++) first += alpha[rowAt + j] * beta[j];
                double firstWeight = g / Math.Max(first, tiny);
                for (int j = 0; j < s; j++) gradInitial[d * s + j] = gradEmission[rowAt + j] = alpha[rowAt + j] * beta[j] * firstWeight;
            }
            GC.KeepAlive(upstreamTensor);
            GC.KeepAlive(saved);
            return new List<Tensor> { gradInitialTensor.to(type, device), gradTransitionTensor.to(type, device), gradEmissionTensor.to(type, device) };
        }

        /// <summary>Scales the entries to sum 1 and returns their sum (0 leaves them zeros: a step impossible in every state).</summary>
        private static double Normalize(Span<double> values)
        {
            // A plain loop: the vectors are a few states long, where TensorPrimitives' dispatch costs more than the sums.
            double total = 0;
            for (int j = 0; j < values.Length; j++) total += values[j];
            double inverse = total > 0 ? 1 / total : 0;
            for (int j = 0; j < values.Length; j++) values[j] *= inverse;
            return total;
        }
    }
}
