using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Regression;

/// <summary>
/// The log-likelihood of a logistic regression on binomial counts, k_r ~ Binomial(n_r, logit⁻¹(x_r · β)) for every row
/// r of a <see cref="SparseDesign"/>, summed over the rows, for each draw of the coefficients β (Stan's
/// <c>binomial_logit_glm</c>). Bernoulli answers of respondents who share every covariate are one such count: the
/// kernel k η − n log(1 + e^η) is exactly the sum of their Bernoulli log-probabilities.
/// On CPU tensors it is one compiled pass over the rows that computes the value and its gradient together, never
/// forming the [draws, rows] predictor; elsewhere a dense product and libtorch's fused binary cross-entropy.
/// </summary>
public sealed partial class BinomialLogitRegression
{
    /// <summary>Which implementation evaluates (both exact; tests hold one to the other).</summary>
    internal enum Algorithm
    {
        /// <summary>The compiled pass on CPU tensors, the tensor path elsewhere.</summary>
        Automatic,
        Tensors,
        CompiledCpu,
    }

    private readonly SparseDesign design;
    private readonly double[] trials, successes;
    /// <summary>n and k/n as tensors, built on first use: only the tensor path reads them (a streamed likelihood builds a regression per minibatch).</summary>
    private readonly Lazy<CachedConstant> trialsTensor, ratesTensor;

    /// <summary>Σ_r log C(n_r, k_r), the part of the log-likelihood that does not depend on β (computed on first use).</summary>
    public double LogBinomialCoefficients => logBinomialCoefficients.Value;

    private readonly Lazy<double> logBinomialCoefficients;

    /// <param name="design">X: one row per count.</param>
    /// <param name="trials">n_r ≥ 0, whole numbers, one per row of the design.</param>
    /// <param name="successes">k_r, whole numbers with 0 ≤ k_r ≤ n_r.</param>
    public BinomialLogitRegression(SparseDesign design, double[] trials, double[] successes)
    {
        this.design = design ?? throw new ArgumentNullException(nameof(design));
        ArgumentNullException.ThrowIfNull(trials);
        ArgumentNullException.ThrowIfNull(successes);
        if (trials.Length != design.Rows)
            throw new ArgumentException($"Expected one count of trials per design row ({design.Rows}) but got {trials.Length}.", nameof(trials));
        if (successes.Length != design.Rows)
            throw new ArgumentException($"Expected one count of successes per design row ({design.Rows}) but got {successes.Length}.", nameof(successes));
        var rates = new double[trials.Length];
        for (int r = 0; r < trials.Length; r++)
        {
            double n = trials[r], k = successes[r];
            if (!(n >= 0) || n != Math.Floor(n) || double.IsInfinity(n))
                throw new ArgumentOutOfRangeException(nameof(trials), n, $"Row {r}: trials must be a whole number ≥ 0.");
            if (!(k >= 0 && k <= n) || k != Math.Floor(k))
                throw new ArgumentOutOfRangeException(nameof(successes), k, $"Row {r}: successes must be a whole number between 0 and its {n} trials.");
            rates[r] = n > 0 ? k / n : 0;
        }
        (this.trials, this.successes) = ((double[])trials.Clone(), (double[])successes.Clone());
        trialsTensor = new Lazy<CachedConstant>(() => new CachedConstant(this.trials));
        ratesTensor = new Lazy<CachedConstant>(() => new CachedConstant(rates));
        logBinomialCoefficients = new Lazy<double>(() => SumOfLogChoose(this.trials, this.successes));
    }

    /// <summary>
    /// Σ_r log Binomial(k_r | n_r, logit⁻¹(x_r · β)) per draw: [B] for coefficients [B, columns], a scalar for [columns].
    /// With <paramref name="dropConstant"/> the Σ log C(n, k) term is left out (Stan's <c>_lupmf</c>): what a
    /// posterior's log density needs, and exactly the Bernoulli log-likelihood of the respondents behind the counts.
    /// </summary>
    public Tensor LogLikelihood(Tensor coefficients, bool dropConstant = false) => LogLikelihood(coefficients, dropConstant, Algorithm.Automatic);

    internal Tensor LogLikelihood(Tensor coefficients, bool dropConstant, Algorithm algorithm)
    {
        TensorArguments.RequireFloatingPoint(coefficients, nameof(coefficients));
        if (coefficients.dim() is < 1 or > 2 || coefficients.shape[^1] != design.Columns)
            throw new ArgumentException(
                $"Expected coefficients [draws, {design.Columns}] or [{design.Columns}] (one per design column) but got [{string.Join(", ", coefficients.shape)}].",
                nameof(coefficients));
        bool single = coefficients.dim() == 1;
        var draws = single ? coefficients.unsqueeze(0) : coefficients;
        bool compiled = algorithm == Algorithm.CompiledCpu || algorithm == Algorithm.Automatic && draws.device_type == DeviceType.CPU;
        var kernel = !compiled ? TensorPath(draws)
            : draws.requires_grad && torch.is_grad_enabled() ? CompiledPass.apply(draws, this) : CompiledValue(draws);
        var result = dropConstant ? kernel : kernel.Plus(LogBinomialCoefficients);
        return single ? result.squeeze(0) : result;
    }

    /// <summary>
    /// Σ_r k η − n log(1 + e^η) = −Σ_r n · BCE-with-logits(η, k/n): libtorch computes that, and differentiates it, in
    /// one fused pass over the [B, rows] predictor each way.
    /// </summary>
    private Tensor TensorPath(Tensor coefficients)
    {
        var eta = coefficients.matmul(design.DenseTransposed(coefficients));
        var shape = eta.shape;
        return torch.nn.functional.binary_cross_entropy_with_logits(eta, ratesTensor.Value.Like(eta).expand(shape), trialsTensor.Value.Like(eta).expand(shape),
            reduction: nn.Reduction.None).sum(new long[] { 1 }).neg();
    }

    /// <summary>Σ_r log C(n_r, k_r) = Σ_r log Γ(n + 1) − log Γ(k + 1) − log Γ(n − k + 1), through libtorch's lgamma, once.</summary>
    private static double SumOfLogChoose(double[] trials, double[] successes)
    {
        using var scope = torch.NewDisposeScope();
        var n = torch.tensor(trials, ScalarType.Float64);
        var k = torch.tensor(successes, ScalarType.Float64);
        var sum = (torch.lgamma(n.Plus(1)) - torch.lgamma(k.Plus(1)) - torch.lgamma((n - k).Plus(1))).sum();
        return HostMemory.Single(sum);
    }
}
