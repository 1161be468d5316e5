using System.Numerics;
using System.Runtime.CompilerServices;
using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static TorchSharp.torch;
using static Microsoft.ML.NormalizingFlows.Tensors.HostMemory;

namespace Microsoft.ML.NormalizingFlows.Sequential;

public static partial class HiddenMarkovModel
{
    /// <summary>
    /// The forward algorithm and its forward–backward gradient as one hand-written pass over time, for CPU tensors.
    /// Why by hand: the work is a few T · S² multiply–adds per draw, little next to what a tensor call costs. The product
    /// tree (<see cref="ForwardAlgorithm"/>) spends about 25 tensor calls per level, and libtorch's per-call cost made
    /// them most of an HMM's training step on CPU. On other devices (CUDA) the tree's few large calls are what pays, so
    /// it stays the path there. No package offers an HMM forward–backward.
    /// <para>Layout: draws last ([T, S, N], N padded to a whole number of SIMD vectors), so each step runs on
    /// <see cref="Vector{T}"/>s of draws (four float64 lanes with AVX2): per draw the recursion is a chain of tiny S-vectors,
    /// across draws it is wide.</para>
    /// <para>Numerics, in float64 whatever the input type: Rabiner's scaling (α_t normalized to sum 1 each step; the
    /// log-likelihood is the sum of the normalizers' logs, taken from their running product whenever it leaves
    /// [1e-200, 1e200]), with A's columns and each step's emissions shifted by their largest log, so nothing overflows
    /// and a step's normalizer is at least (α̂_{t−1} Â)(j) for the likeliest emission's state j. As in the tree, a
    /// transition more than ~700 nats below its column's largest underflows to 0. The backward pass normalizes β and
    /// each ξ_t to 1, as the tree does, so no scale is tracked. A draw whose likelihood is 0 (log −∞) gets a zero
    /// gradient: there is nothing to move probability towards.</para>
    /// </summary>
    private sealed class SequentialForwardBackward : torch.autograd.SingleTensorFunction<SequentialForwardBackward>
    {
        public override string Name => "HiddenMarkovModel.LogLikelihood (sequential CPU)";

        private static readonly Vector<double> FoldBelow = new(1e-200), FoldAbove = new(1e200);
        private static readonly Vector<double> NegativeInfinity = new(double.NegativeInfinity);
        private static readonly Vector<double> Tiny = new(2.2250738585072014e-308); // the smallest normal float64

        /// <summary>Per-state scratch vectors up to this many states live on the stack.</summary>
        private const int SmallStates = 32;

        // Compiled optimized at once: the loops run once per training step, too rarely for tiered compilation to promote
        // them soon.
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var input = (Tensor)vars[2];
            int n = (int)input.shape[0], t = (int)input.shape[1], s = (int)input.shape[2];
            int padded = PaddedToLanes(n);
            // Draws last and padded (padding lanes hold log 0 = 0 entries: finite, computed, never read back).
            var logInitial = DrawsLast((Tensor)vars[0], padded);    // [S, N']
            var logTransition = DrawsLast((Tensor)vars[1], padded); // [S, S, N']
            var logEmission = DrawsLast(input, padded);             // [T, S, N']
            // Saved for the backward pass (tensors written in place; see HostMemory): α̂_t, Â = exp(log A − column max),
            // ê_t = exp(log e_t + column max − shift_t) (t ≥ 2), and the log-likelihoods.
            var alphaTensor = torch.empty(t, s, padded, dtype: ScalarType.Float64);
            var transitionTensor = torch.empty(s, s, padded, dtype: ScalarType.Float64);
            var emissionTensor = torch.empty(t, s, padded, dtype: ScalarType.Float64);
            var logLikelihoodTensor = torch.empty(padded, dtype: ScalarType.Float64);
            ReadOnlySpan<double> pi = HostMemory.Doubles(logInitial), logA = HostMemory.Doubles(logTransition), logE = HostMemory.Doubles(logEmission);
            Span<double> alpha = HostMemory.Doubles(alphaTensor), transition = HostMemory.Doubles(transitionTensor),
                emission = HostMemory.Doubles(emissionTensor), logLikelihood = HostMemory.Doubles(logLikelihoodTensor);
            Span<Vector<double>> a = s * s <= SmallStates * SmallStates ? stackalloc Vector<double>[s * s] : new Vector<double>[s * s];
            Span<Vector<double>> columnMax = s <= SmallStates ? stackalloc Vector<double>[s] : new Vector<double>[s];
            Span<Vector<double>> previous = s <= SmallStates ? stackalloc Vector<double>[s] : new Vector<double>[s];
            Span<Vector<double>> current = s <= SmallStates ? stackalloc Vector<double>[s] : new Vector<double>[s];
            int row = s * padded; // one time step: S rows of N' draws
            for (int lane = 0; lane < padded; lane += Lanes)
            {
                // Â = exp(log A − column max); a state nothing moves to (a column of −∞) keeps a column max of 0, not NaN.
                for (int j = 0; j < s; j++)
                {
                    var max = NegativeInfinity;
                    for (int i = 0; i < s; i++) max = Vector.Max(max, Load(logA, (i * s + j) * padded + lane));
                    columnMax[j] = ZeroWhereNegativeInfinity(max);
                    for (int i = 0; i < s; i++)
                    {
                        a[i * s + j] = Vector.Exp(Load(logA, (i * s + j) * padded + lane) - columnMax[j]);
                        a[i * s + j].CopyTo(transition.Slice((i * s + j) * padded + lane));
                    }
                }
                // t = 1: α_1 ∝ π e_1.
                var shift = NegativeInfinity;
                for (int j = 0; j < s; j++) shift = Vector.Max(shift, Load(pi, j * padded + lane) + Load(logE, j * padded + lane));
                shift = ZeroWhereNegativeInfinity(shift);
                var total = Vector<double>.Zero;
                for (int j = 0; j < s; j++) total += previous[j] = Vector.Exp(Load(pi, j * padded + lane) + Load(logE, j * padded + lane) - shift);
                var logSum = shift;
                var product = Normalize(previous, total);
                for (int j = 0; j < s; j++) previous[j].CopyTo(alpha.Slice(j * padded + lane));
                for (int step = 1; step < t; step++)
                {
                    // ê_t = exp(log e_t + column max − shift_t), shift_t its largest log; α_t(j) = (α̂_{t−1} Â)(j) ê_t(j).
                    int at = step * row + lane;
                    shift = NegativeInfinity;
                    for (int j = 0; j < s; j++) shift = Vector.Max(shift, Load(logE, at + j * padded) + columnMax[j]);
                    shift = ZeroWhereNegativeInfinity(shift);
                    logSum += shift;
                    total = Vector<double>.Zero;
                    for (int j = 0; j < s; j++)
                    {
                        var scaled = Vector.Exp(Load(logE, at + j * padded) + columnMax[j] - shift);
                        scaled.CopyTo(emission.Slice(at + j * padded));
                        var sum = Vector<double>.Zero;
                        for (int i = 0; i < s; i++) sum += previous[i] * a[i * s + j];
                        total += current[j] = sum * scaled;
                    }
                    product *= Normalize(current, total);
                    for (int j = 0; j < s; j++)
                    {
                        current[j].CopyTo(alpha.Slice(at + j * padded));
                        previous[j] = current[j];
                    }
                    if (Vector.LessThanAny(product, FoldBelow) || Vector.GreaterThanAny(product, FoldAbove))
                    {
                        logSum += Vector.Log(product);
                        product = Vector<double>.One;
                    }
                }
                (logSum + Vector.Log(product)).CopyTo(logLikelihood.Slice(lane));
            }
            GC.KeepAlive(logInitial); GC.KeepAlive(logTransition); GC.KeepAlive(logEmission); // read through spans, which do not hold them
            ctx.save_for_backward(new List<Tensor> { alphaTensor, transitionTensor, emissionTensor, logLikelihoodTensor });
            return logLikelihoodTensor.narrow(0, 0, n).to(input.dtype, input.device, copy: true);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad)
        {
            var saved = ctx.get_saved_variables();
            var (type, device) = (grad.dtype, grad.device); // the output's, i.e. the inputs' common type
            int t = (int)saved[0].shape[0], s = (int)saved[0].shape[1], padded = (int)saved[0].shape[2], n = (int)grad.shape[0];
            ReadOnlySpan<double> alpha = HostMemory.Doubles(saved[0]), transition = HostMemory.Doubles(saved[1]),
                emission = HostMemory.Doubles(saved[2]), logLikelihood = HostMemory.Doubles(saved[3]);
            var upstreamTensor = torch.zeros(padded, dtype: ScalarType.Float64);
            upstreamTensor.narrow(0, 0, n).copy_(grad);
            ReadOnlySpan<double> upstream = HostMemory.Doubles(upstreamTensor);
            // Gradients draws last, like the saved state; returned as permuted views of the first N lanes.
            var gradTransitionTensor = torch.empty(s, s, padded, dtype: ScalarType.Float64);
            var gradEmissionTensor = torch.empty(t, s, padded, dtype: ScalarType.Float64);
            Span<double> gradTransition = HostMemory.Doubles(gradTransitionTensor), gradEmission = HostMemory.Doubles(gradEmissionTensor);
            Span<Vector<double>> a = s * s <= SmallStates * SmallStates ? stackalloc Vector<double>[s * s] : new Vector<double>[s * s];
            Span<Vector<double>> counts = s * s <= SmallStates * SmallStates ? stackalloc Vector<double>[s * s] : new Vector<double>[s * s];
            Span<Vector<double>> beta = s <= SmallStates ? stackalloc Vector<double>[s] : new Vector<double>[s];
            Span<Vector<double>> leaving = s <= SmallStates ? stackalloc Vector<double>[s] : new Vector<double>[s];
            Span<Vector<double>> previousBeta = s <= SmallStates ? stackalloc Vector<double>[s] : new Vector<double>[s];
            Span<Vector<double>> marginal = s <= SmallStates ? stackalloc Vector<double>[s] : new Vector<double>[s];
            int row = s * padded;
            for (int lane = 0; lane < padded; lane += Lanes)
            {
                var g = Load(upstream, lane);
                // A draw at −∞ (or with no upstream gradient) gets zeros.
                var alive = Vector.AndNot(~Vector.Equals(g, Vector<double>.Zero), Vector.Equals(Load(logLikelihood, lane), NegativeInfinity));
                for (int k = 0; k < s * s; k++) { a[k] = Load(transition, k * padded + lane); counts[k] = Vector<double>.Zero; }
                for (int j = 0; j < s; j++) beta[j] = new Vector<double>(1.0 / s);
                for (int step = t - 1; step >= 1; step--)
                {
                    int at = step * row + lane, before = (step - 1) * row + lane;
                    // ξ_t(i, j) ∝ α̂_{t−1}(i) Â(i, j) ê_t(j) β̃_t(j), Z_t its sum; β̃_{t−1}(i) ∝ Σ_j Â(i, j) ê_t(j) β̃_t(j).
                    for (int j = 0; j < s; j++) { leaving[j] = Load(emission, at + j * padded) * beta[j]; marginal[j] = Vector<double>.Zero; }
                    var z = Vector<double>.Zero;
                    var betaTotal = Vector<double>.Zero;
                    for (int i = 0; i < s; i++)
                    {
                        var forward = Load(alpha, before + i * padded);
                        var sum = Vector<double>.Zero;
                        for (int j = 0; j < s; j++)
                        {
                            var through = a[i * s + j] * leaving[j];
                            sum += through;
                            marginal[j] += forward * through;
                        }
                        previousBeta[i] = sum;
                        betaTotal += sum;
                        z += forward * sum;
                    }
                    var weight = g / Vector.Max(z, Tiny);
                    for (int i = 0; i < s; i++)
                    {
                        var forward = Load(alpha, before + i * padded) * weight;
                        for (int j = 0; j < s; j++) counts[i * s + j] += forward * leaving[j];
                    }
                    for (int j = 0; j < s; j++) Vector.ConditionalSelect(alive, marginal[j] * weight, Vector<double>.Zero).CopyTo(gradEmission.Slice(at + j * padded));
                    var inverse = Vector<double>.One / Vector.Max(betaTotal, Tiny);
                    for (int i = 0; i < s; i++) beta[i] = previousBeta[i] * inverse;
                }
                for (int k = 0; k < s * s; k++) Vector.ConditionalSelect(alive, counts[k] * a[k], Vector<double>.Zero).CopyTo(gradTransition.Slice(k * padded + lane));
                // P(s_1 | y) ∝ α̂_1 β̃_1: the gradient of log π and of log e_1.
                var first = Vector<double>.Zero;
                for (int j = 0; j < s; j++) first += Load(alpha, j * padded + lane) * beta[j];
                var firstWeight = g / Vector.Max(first, Tiny);
                for (int j = 0; j < s; j++)
                    Vector.ConditionalSelect(alive, Load(alpha, j * padded + lane) * beta[j] * firstWeight, Vector<double>.Zero).CopyTo(gradEmission.Slice(j * padded + lane));
            }
            GC.KeepAlive(upstreamTensor); GC.KeepAlive(saved);
            var gradEmissionOut = gradEmissionTensor.narrow(2, 0, n).permute(2, 0, 1); // [N, T, S]
            return new List<Tensor>
            {
                gradEmissionOut.select(1, 0).to(type, device, copy: true), // ∂/∂log π = P(s_1 | y) = ∂/∂log e_1
                gradTransitionTensor.narrow(2, 0, n).permute(2, 0, 1).to(type, device),
                gradEmissionOut.to(type, device),
            };
        }

        /// <summary>The tensor as contiguous float64 CPU memory with its first dimension (the draws) moved last and padded with zeros to <paramref name="padded"/>.</summary>
        private static Tensor DrawsLast(Tensor tensor, int padded)
        {
            var shape = tensor.shape.Skip(1).Append(padded).ToArray();
            var result = torch.zeros(shape, dtype: ScalarType.Float64);
            var order = Enumerable.Range(1, (int)tensor.dim() - 1).Append(0).Select(i => (long)i).ToArray();
            result.narrow(-1, 0, tensor.shape[0]).copy_(tensor.permute(order));
            return result;
        }

        /// <summary>A shift of −∞ (everything impossible) as 0, so that exp(−∞ − shift) is 0 and not NaN.</summary>
        private static Vector<double> ZeroWhereNegativeInfinity(Vector<double> shift) =>
            Vector.ConditionalSelect(Vector.Equals(shift, NegativeInfinity), Vector<double>.Zero, shift);

        /// <summary>Scales the vectors to sum 1 lane by lane and returns the sums (a lane summing to 0 stays zeros: a step impossible in every state).</summary>
        private static Vector<double> Normalize(Span<Vector<double>> values, Vector<double> total)
        {
            var inverse = Vector.ConditionalSelect(Vector.GreaterThan(total, Vector<double>.Zero), Vector<double>.One / total, Vector<double>.Zero);
            for (int j = 0; j < values.Length; j++) values[j] *= inverse;
            return total;
        }
    }
}
