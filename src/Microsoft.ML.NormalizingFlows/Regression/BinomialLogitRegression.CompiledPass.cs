using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static Microsoft.ML.NormalizingFlows.Tensors.HostMemory;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Regression;

public sealed partial class BinomialLogitRegression
{
    /// <summary>
    /// The log-likelihood kernel Σ_r k η_r − n log(1 + e^{η_r}), η_r = x_r · β, for CPU tensors, as one autograd node.
    /// Why by hand: the tensor path forms η [B, rows] with a dense product (all of X's zeros multiplied) and passes over
    /// it twice more each way for the binomial kernel; at the MRP survey's 3,016 rows and 128 draws that was about a
    /// quarter of a flow's training step. Here each row costs its nonzeros (9 there), draws are handled a vector of
    /// lanes at a time (<see cref="HostMemory.Lanes"/>) with the exponential and logarithm vectorized, and the gradient
    /// ∂/∂β = Σ_r (k_r − n_r σ(η_r)) x_r is accumulated in the same pass, so the backward pass only scales it by the
    /// upstream gradient. Computed in float64 whatever the input type.
    /// </summary>
    private sealed class CompiledPass : autograd.SingleTensorFunction<CompiledPass>
    {
        public override string Name => "BinomialLogitRegression (compiled CPU)";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var coefficients = (Tensor)vars[0];
            var regression = (BinomialLogitRegression)vars[1];
            var (logLikelihood, gradient) = regression.Pass(coefficients, withGradient: true);
            ctx.save_for_backward(new List<Tensor> { gradient! });
            return logLikelihood.to(coefficients.dtype, coefficients.device);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor grad)
        {
            var gradient = ctx.get_saved_variables()[0]; // [draws, columns] float64 on the CPU
            return new List<Tensor> { gradient.to(grad.dtype, grad.device).mul(grad.unsqueeze(1)), null! };
        }
    }

    /// <summary>The kernel per draw outside autograd (no gradient wanted): the pass without its gradient half.</summary>
    private Tensor CompiledValue(Tensor coefficients) => Pass(coefficients, withGradient: false).LogLikelihood.to(coefficients.dtype, coefficients.device);

    /// <summary>
    /// The kernel per draw and its gradient [B, columns] (row-major). Draws are laid out innermost in blocks of
    /// <see cref="HostMemory.Lanes"/>: block b holds β_j of its draws at (b · columns + j) · Lanes, so a block's
    /// coefficients and gradient (a few KB) stay in the first-level cache while every row passes through it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs once per training step: tiering would leave it unoptimized for long
    private (Tensor LogLikelihood, Tensor? Gradient) Pass(Tensor coefficients, bool withGradient)
    {
        int draws = (int)coefficients.shape[0], columns = design.Columns, lanes = Lanes, blocks = PaddedToLanes(draws) / lanes;
        using var noGrad = torch.no_grad();
        // Scratch and results in tensors' memory, not managed arrays: at 128 draws and 102 columns each buffer is past
        // the large-object threshold, and allocating those every step set off full garbage collections.
        var values = HostMemory.Float64(coefficients); // may be the input itself: not disposed here
        using var betaBuffer = torch.empty(blocks * columns * lanes, dtype: ScalarType.Float64);
        using var gradientBuffer = torch.zeros(blocks * columns * lanes, dtype: ScalarType.Float64);
        using var sums = torch.empty(blocks * lanes, dtype: ScalarType.Float64);
        Span<double> beta = HostMemory.Doubles(betaBuffer), gradient = HostMemory.Doubles(gradientBuffer), perLane = HostMemory.Doubles(sums);
        ReadOnlySpan<double> source = HostMemory.Doubles(values);
        beta.Clear(); // the padding draws' coefficients: zero
        for (int i = 0; i < draws; i++)
            for (int j = 0; j < columns; j++) beta[((i / lanes) * columns + j) * lanes + i % lanes] = source[i * columns + j];
        int[] starts = design.RowStarts, indices = design.ColumnIndices;
        double[] x = design.Values;
        // Unchecked loads and stores (Vector.LoadUnsafe): every index is a design column < columns, so each access lies
        // within the block; with checked span slices the bounds checks were most of the pass.
        ref double betaStart = ref MemoryMarshal.GetReference(beta);
        ref double gradientStart = ref MemoryMarshal.GetReference(gradient);
        int rows = design.Rows;
        for (int block = 0; block < blocks; block++)
        {
            ref double blockBeta = ref Unsafe.Add(ref betaStart, block * columns * lanes);
            ref double blockGradient = ref Unsafe.Add(ref gradientStart, block * columns * lanes);
            var sum = Vector<double>.Zero;
            for (int r = 0; r < rows; r++)
            {
                int first = starts[r], end = starts[r + 1];
                var eta = Vector<double>.Zero;
                for (int at = first; at < end; at++) eta += x[at] * Vector.LoadUnsafe(ref blockBeta, (nuint)(indices[at] * lanes));
                // log(1 + e^η) = max(η, 0) + log(1 + e^{−|η|}) and σ(η) from the same e^{−|η|} ≤ 1: no overflow for any η.
                var e = Vector.Exp(-Vector.Abs(eta));
                var onePlus = Vector<double>.One + e;
                var softplus = Vector.Max(eta, Vector<double>.Zero) + Vector.Log(onePlus);
                double n = trials[r], k = successes[r];
                sum += k * eta - n * softplus;
                if (!withGradient) continue;
                var sigmoid = Vector.ConditionalSelect(Vector.LessThan(eta, Vector<double>.Zero), e, Vector<double>.One) / onePlus;
                var slope = new Vector<double>(k) - n * sigmoid;
                for (int at = first; at < end; at++)
                {
                    ref double g = ref Unsafe.Add(ref blockGradient, indices[at] * lanes);
                    (Vector.LoadUnsafe(ref g) + x[at] * slope).StoreUnsafe(ref g);
                }
            }
            sum.CopyTo(perLane.Slice(block * lanes, lanes));
        }
        var result = sums.narrow(0, 0, draws).clone();
        if (!withGradient)
        {
            GC.KeepAlive(values); GC.KeepAlive(betaBuffer); GC.KeepAlive(gradientBuffer); GC.KeepAlive(sums);
            return (result, null);
        }
        var rowMajor = torch.empty(draws, columns, dtype: ScalarType.Float64);
        Span<double> output = HostMemory.Doubles(rowMajor);
        for (int i = 0; i < draws; i++)
            for (int j = 0; j < columns; j++) output[i * columns + j] = gradient[((i / lanes) * columns + j) * lanes + i % lanes];
        GC.KeepAlive(values); GC.KeepAlive(betaBuffer); GC.KeepAlive(gradientBuffer); GC.KeepAlive(sums); // read through spans, which do not hold them
        return (result, rowMajor);
    }
}
