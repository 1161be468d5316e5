using System.Globalization;
using Microsoft.ML.NormalizingFlows.Modeling;
using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static Microsoft.ML.NormalizingFlows.Tensors.RootedScalars;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Regression;

/// <summary>
/// A minibatched binomial-logit log-likelihood with a control variate: the "difference estimator" of subsampled MCMC
/// and VI (Bardenet, Doucet &amp; Holmes 2017; Quiroz, Kohn, Villani &amp; Tran 2019). Every row's log-likelihood,
/// a function of its predictor η_r = x_r · β, is expanded to second order about reference coefficients β⁰; summed over
/// all N rows that expansion is a quadratic Q(β) known exactly from one pass over the data (a P-vector and a P × P
/// matrix). A minibatch of B rows then only estimates how far the rows depart from their expansions:
/// <code>ℓ̂(β) = Q(β) + N/B · Σ_{r ∈ batch} [ℓ_r(β) − Q_r(β)]</code>
/// which is unbiased, as the plain N/B · Σ ℓ_r(β) is, but whose noise is of third order in β − β⁰ instead of the
/// size of the rows' log-likelihoods themselves. Why: with N/B in the hundreds the plain estimate's noise (thousands
/// of nats on the 1M-row MRP survey) swamps the gradient, and a streamed fit drifts to scales 2–4× too large
/// (docs/models.md, "At scale"); near β⁰ this estimate is nearly exact.
/// β⁰ is found by <see cref="AtPenalizedMode(MinibatchSource, Func{MinibatchRows, BinomialLogitRegression}, double, int)"/>:
/// Newton's method on the ridge-penalized likelihood, one pass over the stream per iteration.
/// </summary>
public sealed class BinomialLogitControlVariate : IDisposable
{
    private readonly QuadraticExpansion full;
    private readonly double[] reference;
    private readonly CachedConstant referenceTensor;
    private readonly double logBinomialCoefficients;

    private BinomialLogitControlVariate(double[] reference, QuadraticExpansion full, double logBinomialCoefficients, int passes)
    {
        this.reference = reference;
        this.full = full;
        this.logBinomialCoefficients = logBinomialCoefficients;
        referenceTensor = new CachedConstant(reference);
        Passes = passes;
    }

    /// <summary>β⁰, the coefficients the expansion is about.</summary>
    public IReadOnlyList<double> Reference => reference;

    /// <summary>N, the rows the expansion sums.</summary>
    public long Rows => full.Rows;

    /// <summary>The passes over the data it took to build (Newton iterations, or 1 for a given β⁰).</summary>
    public int Passes { get; }

    /// <summary>
    /// Expands about the mode of the likelihood × N(0, 1/<paramref name="ridge"/>) on every coefficient, found by
    /// Newton's method from β = 0 with one pass over <paramref name="rows"/> per iteration (halving a step that lowers
    /// the objective). It stops once the Newton decrement (the predicted gain of another step) is below 10⁻⁶ nats or
    /// after <paramref name="maxPasses"/>; the expansion is about the last point a pass evaluated, which need only be
    /// near the posterior for the estimate to be precise (it is unbiased anywhere).
    /// </summary>
    /// <param name="rows">The streamed data (<see cref="BayesianModel.Minibatches"/>), read in order, every row once per pass.</param>
    /// <param name="regressionOf">The minibatch's regression, exactly as the log density builds it.</param>
    /// <param name="ridge">The penalty's precision λ &gt; 0: a coefficient the data do not identify (a group level no row has) is held at 0.</param>
    /// <param name="maxPasses">At most this many passes, ≥ 1.</param>
    public static BinomialLogitControlVariate AtPenalizedMode(MinibatchSource rows, Func<MinibatchRows, BinomialLogitRegression> regressionOf, double ridge = 1, int maxPasses = 25)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(regressionOf);
        return AtPenalizedMode(() => rows.EveryRowOnce().Select(regressionOf), ridge, maxPasses);
    }

    /// <summary>As <see cref="AtPenalizedMode(MinibatchSource, Func{MinibatchRows, BinomialLogitRegression}, double, int)"/>, for rows given as regressions over parts of the data; each call of <paramref name="pass"/> must enumerate every row once.</summary>
    public static BinomialLogitControlVariate AtPenalizedMode(Func<IEnumerable<BinomialLogitRegression>> pass, double ridge = 1, int maxPasses = 25)
    {
        ArgumentNullException.ThrowIfNull(pass);
        if (!(ridge > 0) || double.IsInfinity(ridge)) throw new ArgumentOutOfRangeException(nameof(ridge), ridge, "The ridge precision must be positive and finite.");
        if (maxPasses < 1) throw new ArgumentOutOfRangeException(nameof(maxPasses), maxPasses, "At least one pass is needed.");
        double[]? beta = null, step = null;
        QuadraticExpansion? previous = null;
        double previousObjective = double.NegativeInfinity;
        for (int passes = 1; ; passes++)
        {
            var (expansion, logC) = Expand(pass, beta);
            beta ??= new double[expansion.Columns];
            double objective = expansion.Value - 0.5 * ridge * beta.Sum(b => b * b);
            if (objective < previousObjective - 1e-9 && passes < maxPasses)
            {
                // The full step went downhill: halve it from the previous point and evaluate again.
                expansion.Dispose();
                for (int j = 0; j < beta.Length; j++) { step![j] *= 0.5; beta[j] -= step[j]; }
                continue;
            }
            previous?.Dispose();
            previous = expansion;
            previousObjective = objective;
            double decrement;
            (step, decrement) = NewtonStep(expansion, beta, ridge);
            if (decrement < 1e-6 || passes >= maxPasses)
                return new BinomialLogitControlVariate((double[])beta.Clone(), expansion, logC, passes);
            for (int j = 0; j < beta.Length; j++) beta[j] += step[j];
        }
    }

    /// <summary>Expands about the given coefficients (one pass), e.g. a fit's posterior mean of β.</summary>
    public static BinomialLogitControlVariate About(MinibatchSource rows, Func<MinibatchRows, BinomialLogitRegression> regressionOf, double[] reference)
    {
        ArgumentNullException.ThrowIfNull(rows);
        ArgumentNullException.ThrowIfNull(regressionOf);
        return About(() => rows.EveryRowOnce().Select(regressionOf), reference);
    }

    /// <summary>As <see cref="About(MinibatchSource, Func{MinibatchRows, BinomialLogitRegression}, double[])"/>, for rows given as regressions over parts of the data.</summary>
    public static BinomialLogitControlVariate About(Func<IEnumerable<BinomialLogitRegression>> pass, double[] reference)
    {
        ArgumentNullException.ThrowIfNull(pass);
        ArgumentNullException.ThrowIfNull(reference);
        int bad = Array.FindIndex(reference, v => !double.IsFinite(v));
        if (bad >= 0) throw new ArgumentException($"Reference coefficient {bad} is {reference[bad]}; it must be finite.", nameof(reference));
        var (expansion, logC) = Expand(pass, reference);
        return new BinomialLogitControlVariate((double[])reference.Clone(), expansion, logC, 1);
    }

    /// <summary>One pass: the expansion about β (0 when null) of every row, and Σ log C(n, k).</summary>
    private static (QuadraticExpansion Expansion, double LogBinomialCoefficients) Expand(Func<IEnumerable<BinomialLogitRegression>> pass, double[]? beta)
    {
        QuadraticExpansion? expansion = null;
        double logC = 0;
        foreach (var part in pass())
        {
            if (part is null) throw new ArgumentException("The pass yielded a null regression.", nameof(pass));
            expansion ??= new QuadraticExpansion(part.Columns);
            if (part.Columns != expansion.Columns)
                throw new ArgumentException($"Every part of the data must have the same {expansion.Columns} columns; one has {part.Columns}.", nameof(pass));
            if (beta is not null && beta.Length != part.Columns)
                throw new ArgumentException($"Expected {part.Columns} reference coefficients (one per design column) but got {beta.Length}.", "reference");
            part.AddExpansion(beta ?? new double[part.Columns], expansion);
            logC += part.LogBinomialCoefficients;
        }
        if (expansion is null || expansion.Rows == 0) throw new ArgumentException("The pass over the data yielded no rows.", nameof(pass));
        return (expansion, logC);
    }

    /// <summary>The Newton step for ℓ(β) − λ/2 |β|² from its expansion at β, and its decrement ½ stepᵀ(λI − H)step.</summary>
    private static (double[] Step, double Decrement) NewtonStep(QuadraticExpansion expansion, double[] beta, double ridge)
    {
        using var scope = torch.NewDisposeScope();
        var betaTensor = torch.tensor(beta, ScalarType.Float64);
        var negativeHessian = torch.eye(expansion.Columns, dtype: ScalarType.Float64).mul(S(ridge)).sub(expansion.HessianTensor);
        var gradient = expansion.GradientTensor.add(betaTensor, S(-ridge));
        var step = torch.linalg.solve(negativeHessian, gradient.unsqueeze(1)).squeeze(1);
        var result = step.data<double>().ToArray();
        double decrement = 0.5 * result.Zip(gradient.data<double>().ToArray(), (s, g) => s * g).Sum();
        if (!result.All(double.IsFinite)) throw new InvalidOperationException("The Newton step for the control variate's reference is not finite.");
        return (result, decrement);
    }

    /// <summary>
    /// The estimate of the full log-likelihood Σ_{all rows} log Binomial(k | n, logit⁻¹(x · β)) from one minibatch:
    /// Q(β) + <paramref name="scale"/> · Σ_batch [ℓ_r(β) − Q_r(β)]; [draws] for coefficients [draws, columns], a
    /// scalar for [columns]; differentiable in β.
    /// </summary>
    /// <param name="minibatch">The minibatch's rows as a regression with the same columns.</param>
    /// <param name="coefficients">β: [draws, columns] or [columns].</param>
    /// <param name="scale">N/B (<see cref="MinibatchRows.Scale"/>).</param>
    /// <param name="dropConstant">Leave Σ log C(n, k) out (Stan's <c>_lupmf</c>).</param>
    public Tensor LogLikelihood(BinomialLogitRegression minibatch, Tensor coefficients, double scale, bool dropConstant = false)
    {
        ArgumentNullException.ThrowIfNull(minibatch);
        TensorArguments.RequireFloatingPoint(coefficients, nameof(coefficients));
        if (minibatch.Columns != full.Columns)
            throw new ArgumentException($"The minibatch has {minibatch.Columns} columns; the control variate was built for {full.Columns}.", nameof(minibatch));
        if (coefficients.dim() is < 1 or > 2 || coefficients.shape[^1] != full.Columns)
            throw new ArgumentException($"Expected coefficients [draws, {full.Columns}] or [{full.Columns}] but got [{string.Join(", ", coefficients.shape)}].", nameof(coefficients));
        if (!(scale > 0) || double.IsInfinity(scale)) throw new ArgumentOutOfRangeException(nameof(scale), scale, "The scale N/B must be positive and finite.");
        bool single = coefficients.dim() == 1;
        var draws = single ? coefficients.unsqueeze(0) : coefficients;
        using var batch = new QuadraticExpansion(full.Columns);
        minibatch.AddExpansion(reference, batch);
        // Q − scale · Q_batch, one quadratic: its constant, gradient and Hessian at β⁰.
        var constant = full.Value - scale * batch.Value + (dropConstant ? 0 : logBinomialCoefficients);
        var gradient = full.GradientTensor.add(batch.GradientTensor, S(-scale)).to(draws.dtype, draws.device);
        var hessian = full.HessianTensor.add(batch.HessianTensor, S(-scale)).to(draws.dtype, draws.device);
        var delta = draws - referenceTensor.Like(draws);
        var quadratic = delta.matmul(gradient).add(delta.matmul(hessian).mul(delta).sum(new long[] { 1 }), S(0.5))
            .add(torch.tensor(constant, draws.dtype, draws.device), S(1));
        var result = minibatch.LogLikelihood(draws, dropConstant: true).mul(S(scale)).Plus(quadratic);
        return single ? result.squeeze(0) : result;
    }

    /// <summary>Frees the expansion's tensors.</summary>
    public void Dispose() => full.Dispose();

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"binomial-logit control variate over {Rows:N0} rows, {full.Columns} coefficients, {Passes} passes");
}
