using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Regression;

public sealed partial class BinomialLogitRegression
{
    /// <summary>The number of rows (counts).</summary>
    public int Rows => design.Rows;

    /// <summary>The number of coefficients.</summary>
    public int Columns => design.Columns;

    /// <summary>
    /// Adds this regression's second-order expansion about <paramref name="reference"/> to <paramref name="into"/>:
    /// each row's kernel ℓ_r(η) = k η − n log(1 + e^η) (no log C), as a function of its predictor, expanded about
    /// η⁰_r = x_r · β⁰ is ℓ_r(η⁰) + a_r (η − η⁰) + ½ b_r (η − η⁰)² with a_r = k − n σ(η⁰) and b_r = −n σ(η⁰)(1 − σ(η⁰));
    /// in β that is ℓ_r(η⁰) + a_r x_r · δ + ½ b_r (x_r · δ)², δ = β − β⁰. Each row costs its nonzeros squared.
    /// </summary>
    internal void AddExpansion(ReadOnlySpan<double> reference, QuadraticExpansion into)
    {
        var starts = design.RowStarts;
        var columns = design.ColumnIndices;
        var values = design.Values;
        int p = design.Columns;
        var gradient = into.Gradient;
        var hessian = into.Hessian;
        double value = 0;
        for (int r = 0; r < design.Rows; r++)
        {
            int begin = starts[r], end = starts[r + 1];
            double eta = 0;
            for (int at = begin; at < end; at++) eta += values[at] * reference[columns[at]];
            double n = trials[r], k = successes[r];
            double softplus = Math.Max(eta, 0) + Math.Log(1 + Math.Exp(-Math.Abs(eta)));
            double sigma = eta >= 0 ? 1 / (1 + Math.Exp(-eta)) : Math.Exp(eta) / (1 + Math.Exp(eta));
            value += k * eta - n * softplus;
            double a = k - n * sigma, b = -n * sigma * (1 - sigma);
            for (int at = begin; at < end; at++)
            {
                int i = columns[at];
                double xi = values[at];
                gradient[i] += a * xi;
                var row = hessian.Slice(i * p, p);
                for (int other = begin; other < end; other++) row[columns[other]] += b * xi * values[other];
            }
        }
        into.Add(value, design.Rows);
    }
}

/// <summary>
/// A log-likelihood's second-order expansion about a point β⁰, summed over rows: c + gᵀδ + ½ δᵀHδ with δ = β − β⁰.
/// The gradient and Hessian live in float64 CPU tensors (H is P × P: past the large-object threshold for a few
/// hundred coefficients, and rebuilt every minibatch).
/// </summary>
internal sealed class QuadraticExpansion : IDisposable
{
    private readonly Tensor gradient, hessian;

    public QuadraticExpansion(int columns)
    {
        Columns = columns;
        gradient = torch.zeros(columns, dtype: ScalarType.Float64);
        hessian = torch.zeros(columns, columns, dtype: ScalarType.Float64);
    }

    public int Columns { get; }

    /// <summary>c: the rows' log-likelihood kernels at β⁰.</summary>
    public double Value { get; private set; }

    /// <summary>The rows it sums.</summary>
    public long Rows { get; private set; }

    public Span<double> Gradient => HostMemory.Doubles(gradient);

    public Span<double> Hessian => HostMemory.Doubles(hessian);

    public Tensor GradientTensor => gradient;

    public Tensor HessianTensor => hessian;

    public void Add(double value, long rows)
    {
        Value += value;
        Rows += rows;
    }

    public void Dispose()
    {
        gradient.Dispose();
        hessian.Dispose();
    }
}
