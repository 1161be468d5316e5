using System.Runtime.CompilerServices;
using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Sequential;

public static partial class LinearRecurrence
{
    /// <summary>
    /// The recursion itself, x_t = a_t x_{t−1} + b_t, one pass per series, for CPU tensors; the backward pass is the
    /// adjoint recursion g_t = ∂L/∂x_t + a_{t+1} g_{t+1} run backwards. Why by hand: it is one multiply–add per step,
    /// while the chunked scan (<see cref="RecurrenceFunction"/>) spends some 80 tensor calls on a forward and backward
    /// pass, whose per-call cost was most of a GARCH model's training step on CPU. The chunked scan stays the path on
    /// other devices (CUDA), where few large calls pay. Computed in float64 whatever the input type, as the scan is;
    /// being the recursion itself it needs no guard for small coefficients.
    /// </summary>
    private sealed class SequentialRecurrence : torch.autograd.SingleTensorFunction<SequentialRecurrence>
    {
        public override string Name => "LinearRecurrence (sequential CPU)";

        // Compiled optimized at once (the loops run once per training step, too rarely for tiered compilation).
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var (coefficient, offset, start) = ((Tensor)vars[0], (Tensor)vars[1], vars[2] as Tensor);
            long steps = offset.shape[^1], series = offset.numel() / steps;
            bool constant = coefficient.shape[^1] == 1;
            // Flat [series, T] (or [series, 1]) float64 copies or views; the leading dimensions already broadcast to b's.
            var a = HostMemory.Float64(coefficient).reshape(series, constant ? 1 : steps);
            var b = HostMemory.Float64(offset).reshape(series, steps);
            var x0 = start is null ? null : HostMemory.Float64(start).reshape(series);
            var x = torch.empty(series, steps, dtype: ScalarType.Float64);
            ReadOnlySpan<double> aValues = HostMemory.Doubles(a), bValues = HostMemory.Doubles(b);
            ReadOnlySpan<double> startValues = x0 is null ? default : HostMemory.Doubles(x0);
            Span<double> xValues = HostMemory.Doubles(x);
            int t = (int)steps, stride = constant ? 0 : 1;
            for (int n = 0; n < (int)series; n++)
            {
                double previous = x0 is null ? 0 : startValues[n];
                int at = n * t, aAt = constant ? n : n * t;
                for (int step = 0; step < t; step++)
                    xValues[at + step] = previous = aValues[aAt + step * stride] * previous + bValues[at + step];
            }
            GC.KeepAlive(a); GC.KeepAlive(b); GC.KeepAlive(x0); // read through spans, which do not hold them
            ctx.save_for_backward(new List<Tensor> { a, x, x0! });
            ctx.save_data("shapes", (coefficient.shape, offset.shape, start?.shape));
            return x.reshape(offset.shape).to(offset.dtype, offset.device);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor grad)
        {
            var saved = ctx.get_saved_variables();
            var (a, x) = (saved[0], saved[1]);
            var x0 = saved.Count > 2 && saved[2] is { IsInvalid: false } s ? s : null;
            var (coefficientShape, offsetShape, startShape) = ((long[], long[], long[]?))ctx.get_data("shapes");
            int series = (int)x.shape[0], t = (int)x.shape[1];
            bool constant = a.shape[1] == 1;
            var upstream = HostMemory.Float64(grad).reshape(series, t);
            var gradA = torch.zeros(series, constant ? 1 : t, dtype: ScalarType.Float64);
            var gradB = torch.empty(series, t, dtype: ScalarType.Float64);
            var gradX0 = x0 is null ? null : torch.empty(series, dtype: ScalarType.Float64);
            ReadOnlySpan<double> aValues = HostMemory.Doubles(a), xValues = HostMemory.Doubles(x), upstreamValues = HostMemory.Doubles(upstream);
            ReadOnlySpan<double> startValues = x0 is null ? default : HostMemory.Doubles(x0);
            Span<double> gradAValues = HostMemory.Doubles(gradA), gradBValues = HostMemory.Doubles(gradB);
            Span<double> gradX0Values = gradX0 is null ? default : HostMemory.Doubles(gradX0);
            int stride = constant ? 0 : 1;
            for (int n = 0; n < series; n++)
            {
                int at = n * t, aAt = constant ? n : n * t;
                double g = 0, next = 0; // g_{t+1} and a_{t+1} (none after the last step)
                for (int step = t - 1; step >= 0; step--)
                {
                    g = upstreamValues[at + step] + next * g;
                    gradBValues[at + step] = g;
                    double previous = step > 0 ? xValues[at + step - 1] : x0 is null ? 0 : startValues[n];
                    double coefficientNow = aValues[aAt + step * stride];
                    gradAValues[constant ? n : at + step] += g * previous;
                    next = coefficientNow;
                }
                if (x0 is not null) gradX0Values[n] = next * g; // a_1 g_1
            }
            GC.KeepAlive(upstream); GC.KeepAlive(saved);
            var type = grad.dtype;
            var device = grad.device;
            return new List<Tensor>
            {
                gradA.reshape(coefficientShape).to(type, device), gradB.reshape(offsetShape).to(type, device),
                gradX0 is null ? null! : gradX0.reshape(startShape!).to(type, device),
            };
        }
    }
}
