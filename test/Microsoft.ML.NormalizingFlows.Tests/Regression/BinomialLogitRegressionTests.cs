using Microsoft.ML.NormalizingFlows.Modeling.Distributions;
using Microsoft.ML.NormalizingFlows.Regression;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Regression;

/// <summary>
/// The binomial logistic regression likelihood equals the sum of <see cref="BinomialLogit"/> log-probabilities over the
/// rows of the dense design, in value and gradient (float64, 1e-10). Run once per implementation: the compiled pass
/// that CPU tensors take, and the tensor path that other devices take.
/// </summary>
public abstract class BinomialLogitRegressionTests
{
    private protected abstract BinomialLogitRegression.Algorithm Algorithm { get; }

    /// <summary>A multilevel-style design: intercept, one covariate, two one-hot groups (4 and 3 levels); 11 columns, 40 rows.</summary>
    private static (double[] Dense, int Rows, int Columns, double[] Trials, double[] Successes) Survey(int seed)
    {
        var random = new Random(seed);
        const int rows = 40, columns = 2 + 4 + 3;
        var x = new double[rows * columns];
        var n = new double[rows];
        var k = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            x[r * columns] = 1;
            x[r * columns + 1] = random.NextDouble() - 0.5;
            x[r * columns + 2 + random.Next(4)] = 1;
            x[r * columns + 6 + random.Next(3)] = 1;
            n[r] = r == 7 ? 0 : random.Next(1, 12); // a row with no trials contributes nothing
            k[r] = random.Next(0, (int)n[r] + 1);
        }
        return (x, rows, columns, n, k);
    }

    /// <summary>Σ_r BinomialLogit(n_r, x_r · β).LogProb(k_r) with the dense design: the definition.</summary>
    private static Tensor Reference(Tensor beta, double[] dense, int rows, int columns, double[] n, double[] k)
    {
        var x = torch.tensor(dense, new long[] { rows, columns }, ScalarType.Float64).to(beta.dtype);
        var eta = beta.matmul(x.t());
        return new BinomialLogit(torch.tensor(n, beta.dtype), eta).LogProb(torch.tensor(k, beta.dtype)).sum(new long[] { -1 });
    }

    [TestMethod]
    public void TheLikelihoodAndItsGradientAreTheSumOfBinomialLogProbabilities()
    {
        var (dense, rows, columns, n, k) = Survey(1);
        var regression = new BinomialLogitRegression(SparseDesign.FromDense(dense, rows, columns), n, k);
        Assert.AreEqual(rows * 4, SparseDesign.FromDense(dense, rows, columns).NonZeros);
        // 13 draws: not a whole number of vector lanes, so the padding is exercised; some predictors far in the tails.
        var beta = (torch.randn(13, columns, dtype: ScalarType.Float64, generator: new Generator(5)) * 3).requires_grad_();
        var expected = Reference(beta, dense, rows, columns, n, k);
        var actual = regression.LogLikelihood(beta, dropConstant: false, Algorithm);
        AssertClose(expected, actual, 1e-10, "log-likelihood");
        // A different weight per draw, so that a gradient mixed up between draws shows.
        var weights = torch.linspace(-1, 2, 13, dtype: ScalarType.Float64);
        var gradExpected = torch.autograd.grad(new[] { (expected * weights).sum() }, new[] { beta })[0];
        var gradActual = torch.autograd.grad(new[] { (actual * weights).sum() }, new[] { beta })[0];
        AssertClose(gradExpected, gradActual, 1e-10, "gradient");
        // Without the constant: exactly the Bernoulli log-likelihood of the respondents behind the counts.
        var kernel = regression.LogLikelihood(beta, dropConstant: true, Algorithm);
        AssertClose(expected - regression.LogBinomialCoefficients, kernel, 1e-10, "kernel");
        using (torch.no_grad()) AssertClose(expected, regression.LogLikelihood(beta, false, Algorithm), 1e-10, "value without gradient");
    }

    [TestMethod]
    public void AggregatedCountsEqualTheirRespondentsBernoulliLikelihood()
    {
        // Two cells: 3 respondents with 2 yes, 2 respondents with 0 yes.
        var design = SparseDesign.FromRows(2, new[] { new[] { (0, 1.0), (1, 0.5) }, new[] { (0, 1.0) } });
        var regression = new BinomialLogitRegression(design, new[] { 3.0, 2.0 }, new[] { 2.0, 0.0 });
        var beta = torch.tensor(new[] { 0.3, -1.2 }, ScalarType.Float64);
        double eta0 = 0.3 - 0.6, eta1 = 0.3;
        double LogSigmoid(double v) => -Math.Log(1 + Math.Exp(-v));
        double bernoulli = 2 * LogSigmoid(eta0) + LogSigmoid(-eta0) + 2 * LogSigmoid(-eta1);
        Assert.AreEqual(bernoulli, regression.LogLikelihood(beta, true, Algorithm).item<double>(), 1e-12);
        Assert.AreEqual(bernoulli + Math.Log(3), regression.LogLikelihood(beta, false, Algorithm).item<double>(), 1e-12);
        Assert.AreEqual(Math.Log(3), regression.LogBinomialCoefficients, 1e-12);
    }

    [TestMethod]
    public void ExtremePredictorsStayFiniteAndFloat32Works()
    {
        var design = SparseDesign.FromRows(1, new[] { new[] { (0, 1.0) }, new[] { (0, -1.0) } });
        var regression = new BinomialLogitRegression(design, new[] { 5.0, 5.0 }, new[] { 5.0, 0.0 });
        // η = ±800: e^η overflows; the log-likelihood is 0 at β = 800 and −10 · 800 = −8,000 at β = −800.
        var beta = torch.tensor(new[] { 800.0, -800.0 }, new long[] { 2, 1 }, ScalarType.Float64).requires_grad_();
        var value = regression.LogLikelihood(beta, true, Algorithm);
        AssertClose(torch.tensor(new[] { 0.0, -8000.0 }, ScalarType.Float64), value, 1e-9, "tails");
        var grad = torch.autograd.grad(new[] { value.sum() }, new[] { beta })[0];
        AssertClose(torch.tensor(new[] { 0.0, 10.0 }, new long[] { 2, 1 }, ScalarType.Float64), grad, 1e-9, "tail gradient");

        var (dense, rows, columns, n, k) = Survey(2);
        var full = new BinomialLogitRegression(SparseDesign.FromDense(dense, rows, columns), n, k);
        var beta32 = torch.randn(6, columns, dtype: ScalarType.Float32, generator: new Generator(3));
        var value32 = full.LogLikelihood(beta32, false, Algorithm);
        Assert.AreEqual(ScalarType.Float32, value32.dtype);
        AssertClose(Reference(beta32.to(ScalarType.Float64), dense, rows, columns, n, k), value32.to(ScalarType.Float64), 1e-3, "float32");
        // One draw as a vector gives a scalar.
        var single = full.LogLikelihood(beta32[0].to(ScalarType.Float64), false, Algorithm);
        Assert.AreEqual(0, (int)single.dim());
    }
}

[TestClass]
public sealed class BinomialLogitRegressionCompiledCpuTests : BinomialLogitRegressionTests
{
    private protected override BinomialLogitRegression.Algorithm Algorithm => BinomialLogitRegression.Algorithm.CompiledCpu;
}

[TestClass]
public sealed class BinomialLogitRegressionTensorPathTests : BinomialLogitRegressionTests
{
    private protected override BinomialLogitRegression.Algorithm Algorithm => BinomialLogitRegression.Algorithm.Tensors;
}

/// <summary>A multilevel design built from covariates and group levels is the dense design it stands for.</summary>
[TestClass]
public sealed class SparseDesignTests
{
    [TestMethod]
    public void AMultilevelDesignIsItsDenseMatrix()
    {
        var random = new Random(4);
        const int rows = 25;
        var intercept = Enumerable.Repeat(1.0, rows).ToArray();
        var covariate = Enumerable.Range(0, rows).Select(_ => random.NextDouble() - 0.5).ToArray();
        var first = Enumerable.Range(0, rows).Select(_ => random.Next(4)).ToArray();
        var second = Enumerable.Range(0, rows).Select(_ => random.Next(3)).ToArray();
        var design = SparseDesign.Multilevel(new[] { intercept, covariate }, new[] { (first, 4), (second, 3) });
        Assert.AreEqual(9, design.Columns);
        Assert.AreEqual(rows * 4, design.NonZeros);
        var dense = new double[rows * 9];
        for (int r = 0; r < rows; r++)
        {
            dense[r * 9] = 1;
            dense[r * 9 + 1] = covariate[r];
            dense[r * 9 + 2 + first[r]] = 1;
            dense[r * 9 + 6 + second[r]] = 1;
        }
        CollectionAssert.AreEqual(dense, design.ToDense());
        var n = Enumerable.Range(0, rows).Select(_ => (double)random.Next(1, 6)).ToArray();
        var k = n.Select(t => (double)random.Next(0, (int)t + 1)).ToArray();
        var beta = torch.randn(5, 9, dtype: ScalarType.Float64, generator: new Generator(2));
        var expected = new BinomialLogitRegression(SparseDesign.FromDense(dense, rows, 9), n, k).LogLikelihood(beta);
        AssertClose(expected, new BinomialLogitRegression(design, n, k).LogLikelihood(beta), 1e-12, "multilevel vs dense");
        AssertClose(expected, new BinomialLogitRegression(design, n, k).LogLikelihood(beta, false, BinomialLogitRegression.Algorithm.Tensors), 1e-12, "dense Xᵀ of a multilevel design");

        Assert.AreEqual("groups", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SparseDesign.Multilevel(new[] { intercept }, new[] { (first, 3) })).ParamName);
        Assert.AreEqual("groups", Assert.ThrowsExactly<ArgumentException>(() => SparseDesign.Multilevel(new[] { intercept }, new[] { (first[..5], 4) })).ParamName);
        Assert.AreEqual("covariates", Assert.ThrowsExactly<ArgumentException>(() => SparseDesign.Multilevel(new[] { intercept, covariate[..3] }, new[] { (first, 4) })).ParamName);
        Assert.AreEqual("covariates", Assert.ThrowsExactly<ArgumentException>(() => SparseDesign.Multilevel(new[] { new[] { double.NaN } }, Array.Empty<(int[], int)>())).ParamName);
    }
}

/// <summary>Bad input is refused by name: design values, columns, counts, coefficient shapes.</summary>
[TestClass]
public sealed class BinomialLogitRegressionInputTests
{
    private static readonly SparseDesign Design = SparseDesign.FromDense(new[] { 1.0, 0, 1, 2 }, 2, 2);

    [TestMethod]
    public void BadDesignsCountsAndCoefficientsAreRefusedByName()
    {
        Assert.AreEqual("values", Assert.ThrowsExactly<ArgumentException>(() => SparseDesign.FromDense(new double[5], 2, 2)).ParamName);
        Assert.AreEqual("values", Assert.ThrowsExactly<ArgumentException>(() => SparseDesign.FromDense(new[] { double.NaN, 0, 0, 0 }, 2, 2)).ParamName);
        Assert.AreEqual("rows", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SparseDesign.FromRows(2, new[] { new[] { (2, 1.0) } })).ParamName);
        Assert.AreEqual("rows", Assert.ThrowsExactly<ArgumentException>(() => SparseDesign.FromRows(2, new[] { new[] { (1, double.PositiveInfinity) } })).ParamName);
        Assert.AreEqual("columns", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => SparseDesign.FromDense(Array.Empty<double>(), 0, 0)).ParamName);
        Assert.AreEqual("trials", Assert.ThrowsExactly<ArgumentException>(() => new BinomialLogitRegression(Design, new[] { 1.0 }, new[] { 1.0, 0 })).ParamName);
        Assert.AreEqual("successes", Assert.ThrowsExactly<ArgumentException>(() => new BinomialLogitRegression(Design, new[] { 1.0, 1 }, new[] { 1.0 })).ParamName);
        Assert.AreEqual("trials", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new BinomialLogitRegression(Design, new[] { 1.5, 1 }, new[] { 1.0, 0 })).ParamName);
        Assert.AreEqual("trials", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new BinomialLogitRegression(Design, new[] { -1.0, 1 }, new[] { 0.0, 0 })).ParamName);
        Assert.AreEqual("successes", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new BinomialLogitRegression(Design, new[] { 1.0, 1 }, new[] { 2.0, 0 })).ParamName);
        Assert.AreEqual("successes", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new BinomialLogitRegression(Design, new[] { 2.0, 1 }, new[] { 0.5, 0 })).ParamName);
        var regression = new BinomialLogitRegression(Design, new[] { 2.0, 1 }, new[] { 1.0, 0 });
        var wrongWidth = Assert.ThrowsExactly<ArgumentException>(() => regression.LogLikelihood(torch.zeros(4, 3, dtype: ScalarType.Float64)));
        Assert.AreEqual("coefficients", wrongWidth.ParamName);
        StringAssert.Contains(wrongWidth.Message, "[4, 3]");
        Assert.AreEqual("coefficients", Assert.ThrowsExactly<ArgumentException>(() => regression.LogLikelihood(torch.zeros(4, 2, dtype: ScalarType.Int64))).ParamName);
    }
}
