using Microsoft.ML;
using Microsoft.ML.NormalizingFlows.Modeling;
using Microsoft.ML.NormalizingFlows.Regression;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Regression;

/// <summary>
/// The control-variate (difference) estimator of a streamed binomial-logit likelihood: exact at its reference, unbiased
/// elsewhere, far less noisy than the plain N/B-scaled sum, and built from an IDataView's rows, each read once per pass.
/// </summary>
[TestClass]
public sealed class BinomialLogitControlVariateTests
{
    public TestContext TestContext { get; set; } = null!;

    private const int Rows = 6_000, Columns = 2 + 5 + 4;

    /// <summary>Respondents (one trial each): intercept, a covariate, two one-hot groups of 5 and 4 levels.</summary>
    private static (int[][] Levels, double[] Covariate, double[] Y) Respondents(int seed = 3)
    {
        var random = new Random(seed);
        var a = new int[Rows];
        var b = new int[Rows];
        var x = new double[Rows];
        var y = new double[Rows];
        double[] groupA = { -0.6, -0.2, 0.1, 0.3, 0.5 }, groupB = { 0.4, -0.1, 0.2, -0.5 };
        for (int r = 0; r < Rows; r++)
        {
            (a[r], b[r], x[r]) = (random.Next(5), random.Next(4), random.NextDouble() * 2 - 1);
            double eta = -0.3 + 0.8 * x[r] + groupA[a[r]] + groupB[b[r]];
            y[r] = random.NextDouble() < 1 / (1 + Math.Exp(-eta)) ? 1 : 0;
        }
        return (new[] { a, b }, x, y);
    }

    private static BinomialLogitRegression RegressionOf(IReadOnlyList<int> rows, int[][] levels, double[] covariate, double[] y)
    {
        var design = SparseDesign.Multilevel(
            new[] { rows.Select(_ => 1.0).ToArray(), rows.Select(r => covariate[r]).ToArray() },
            new[] { (rows.Select(r => levels[0][r]).ToArray(), 5), (rows.Select(r => levels[1][r]).ToArray(), 4) });
        return new BinomialLogitRegression(design, rows.Select(_ => 1.0).ToArray(), rows.Select(r => y[r]).ToArray());
    }

    /// <summary>A pass over the data in parts of 1,000 rows.</summary>
    private static Func<IEnumerable<BinomialLogitRegression>> Pass(int[][] levels, double[] covariate, double[] y) =>
        () => Enumerable.Range(0, Rows / 1_000).Select(p => RegressionOf(Enumerable.Range(p * 1_000, 1_000).ToArray(), levels, covariate, y));

    [TestMethod]
    public void TheEstimateIsExactAtItsReferenceAndUnbiasedAndFarLessNoisyElsewhere()
    {
        var (levels, covariate, y) = Respondents();
        var full = RegressionOf(Enumerable.Range(0, Rows).ToArray(), levels, covariate, y);
        using var variate = BinomialLogitControlVariate.AtPenalizedMode(Pass(levels, covariate, y));
        TestContext.WriteLine(variate.ToString());
        Assert.AreEqual(Rows, variate.Rows);
        Assert.IsTrue(variate.Passes is > 2 and < 15, $"Newton from 0 takes a handful of passes, took {variate.Passes}");

        // The reference is the ridge-penalized mode, ∇ℓ(β⁰) = β⁰ (ridge 1), up to the last Newton step, whose predicted
        // gain was under 1e-6 nats: with curvatures of hundreds to thousands here, a gradient below 1e-2 is β⁰ within 1e-4.
        var reference = torch.tensor(variate.Reference.ToArray(), ScalarType.Float64).requires_grad_();
        var gradient = torch.autograd.grad(new[] { full.LogLikelihood(reference) }, new[] { reference })[0];
        AssertClose(reference.detach(), gradient, 1e-2, "the penalized likelihood's gradient at the reference");

        const int batch = 60;
        double scale = Rows / (double)batch;
        var random = new Random(11);
        BinomialLogitRegression RandomBatch() => RegressionOf(Enumerable.Range(0, Rows).OrderBy(_ => random.Next()).Take(batch).ToArray(), levels, covariate, y);

        // At β⁰ every row's departure from its expansion is 0: any minibatch gives the full likelihood and gradient.
        for (int i = 0; i < 3; i++)
        {
            var at = torch.tensor(variate.Reference.ToArray(), ScalarType.Float64).requires_grad_();
            var estimate = variate.LogLikelihood(RandomBatch(), at, scale);
            var estimateGradient = torch.autograd.grad(new[] { estimate }, new[] { at })[0];
            AssertClose(full.LogLikelihood(reference.detach()), estimate.detach(), 1e-8, "the estimate at the reference");
            AssertClose(gradient, estimateGradient, 1e-8, "its gradient at the reference");
        }

        // Two draws 0.1 away from β⁰ in every coefficient (a posterior's width here is about 0.05–0.1).
        var shift = torch.tensor(new double[] { 0.1, -0.1 }, ScalarType.Float64).unsqueeze(1) * torch.ones(1, Columns, dtype: ScalarType.Float64);
        var draws = torch.tensor(variate.Reference.ToArray(), ScalarType.Float64).unsqueeze(0) + shift;
        var exact = full.LogLikelihood(draws).data<double>().ToArray();
        const int repeats = 400;
        var controlled = new double[repeats][];
        var plain = new double[repeats][];
        for (int i = 0; i < repeats; i++)
        {
            var part = RandomBatch();
            controlled[i] = variate.LogLikelihood(part, draws, scale).data<double>().ToArray();
            plain[i] = (part.LogLikelihood(draws) * scale).data<double>().ToArray();
        }
        for (int d = 0; d < 2; d++)
        {
            var (mean, sd) = MeanAndSd(controlled.Select(v => v[d]).ToArray());
            var (_, plainSd) = MeanAndSd(plain.Select(v => v[d]).ToArray());
            TestContext.WriteLine($"draw {d}: exact {exact[d]:F3}, control variate {mean:F3} ± {sd / Math.Sqrt(repeats):F3} (sd {sd:F3}), plain sd {plainSd:F1}");
            Assert.IsTrue(Math.Abs(mean - exact[d]) < 4 * sd / Math.Sqrt(repeats), $"draw {d}: the estimate is unbiased ({mean} vs {exact[d]})");
            Assert.IsTrue(sd > 0, "away from the reference the estimate does vary between minibatches");
            Assert.IsTrue(sd < plainSd / 20, $"draw {d}: sd {sd} against the plain estimate's {plainSd}");
        }
    }

    [TestMethod]
    public void AStreamedExpansionReadsEveryRowOnceAndEqualsTheInMemoryOne()
    {
        var (levels, covariate, y) = Respondents();
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFromEnumerable(Enumerable.Range(0, Rows).Select(r => new Respondent { A = levels[0][r], B = levels[1][r], X = covariate[r], Y = (float)y[r] }));
        // 700-row batches: 8 full ones and a short last one.
        var model = new BayesianModel("streamed").Parameter("beta", Columns).Minibatch(ml, view, 700, "A", "B", "X", "Y");
        var source = model.Minibatches!;
        long seen = 0;
        double ySum = 0;
        foreach (var rows in source.EveryRowOnce())
        {
            seen += rows["Y"].shape[0];
            ySum += rows["Y"].sum().item<double>();
        }
        Assert.AreEqual(Rows, seen, "every row once");
        Assert.AreEqual(y.Sum(), ySum, 1e-9, "every row once, none twice");

        using var streamed = BinomialLogitControlVariate.AtPenalizedMode(source, FromRows);
        using var inMemory = BinomialLogitControlVariate.AtPenalizedMode(Pass(levels, covariate, y));
        Assert.AreEqual(inMemory.Passes, streamed.Passes);
        AssertClose(torch.tensor(inMemory.Reference.ToArray()), torch.tensor(streamed.Reference.ToArray()), 1e-9, "the same reference from the stream");
        var draws = torch.randn(4, Columns, dtype: ScalarType.Float64, generator: new Generator(2)) * 0.2;
        var part = RegressionOf(Enumerable.Range(100, 50).ToArray(), levels, covariate, y);
        AssertClose(inMemory.LogLikelihood(part, draws, 120), streamed.LogLikelihood(part, draws, 120), 1e-7, "the same estimate");
        // With the constant, Σ log C(1, y) = 0 for Bernoulli rows: the two agree.
        AssertClose(streamed.LogLikelihood(part, draws, 120, dropConstant: true), streamed.LogLikelihood(part, draws, 120), 1e-12, "log C(1, y) = 0");
        // About a given point: one pass.
        using var about = BinomialLogitControlVariate.About(source, FromRows, new double[Columns]);
        Assert.AreEqual(1, about.Passes);
    }

    [TestMethod]
    public void AStreamedFitWithTheControlVariateTrainsAtInMemoryRatesAndMatchesTheInMemoryFit()
    {
        var (levels, covariate, y) = Respondents();
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFromEnumerable(Enumerable.Range(0, Rows).Select(r => new Respondent { A = levels[0][r], B = levels[1][r], X = covariate[r], Y = (float)y[r] }));
        var full = RegressionOf(Enumerable.Range(0, Rows).ToArray(), levels, covariate, y);
        static Tensor Prior(ModelContext m) => new Microsoft.ML.NormalizingFlows.Modeling.Distributions.Normal(0, 2.5).LogProb(m["beta"]).sum(new long[] { 1 });
        var inMemory = new BayesianModel("in memory").Parameter("beta", Columns).LogDensity(m => Prior(m) + full.LogLikelihood(m["beta"]));
        // 60-row minibatches: N/B = 100, where the plain estimate's noise is hundreds of nats.
        var streamed = new BayesianModel("streamed").Parameter("beta", Columns).Minibatch(ml, view, 60, "A", "B", "X", "Y");
        using var variate = BinomialLogitControlVariate.AtPenalizedMode(streamed.Minibatches!, FromRows);
        streamed.LogDensity(m => Prior(m) + variate.LogLikelihood(FromRows(m.Minibatch), m["beta"], m.Minibatch.Scale));
        var options = new PosteriorFitOptions { Family = ApproximationFamily.FullRankGaussian, ModeIterations = 500, GaussianIterations = 1_500, EvaluationDraws = 500, ReportSamples = 500, Threads = 1 };
        var streamedFit = streamed.Fit(options);
        var memoryFit = inMemory.Fit(options);
        foreach (var stage in streamedFit.Stages) TestContext.WriteLine($"{stage.Name}: {stage.Detail}");
        StringAssert.Contains(streamedFit.Stages.Single(s => s.Name == "minibatch noise").Detail, "learning rates × 1", "a precise estimate trains at the in-memory rates");
        var a = streamedFit.Summary(4_000);
        var b = memoryFit.Summary(4_000);
        foreach (var row in b.Rows)
        {
            TestContext.WriteLine($"{row.Name}: streamed {a[row.Name].Mean:F4} ± {a[row.Name].Sd:F4}, in memory {row.Mean:F4} ± {row.Sd:F4}");
            Assert.AreEqual(row.Mean, a[row.Name].Mean, 0.15 * row.Sd, $"{row.Name}: mean");
            Assert.AreEqual(row.Sd, a[row.Name].Sd, 0.1 * row.Sd, $"{row.Name}: sd");
        }
    }

    private static BinomialLogitRegression FromRows(MinibatchRows rows)
    {
        var a = rows["A"].data<long>().ToArray();
        var b = rows["B"].data<long>().ToArray();
        var x = rows["X"].to(ScalarType.Float64).data<double>().ToArray();
        var y = rows["Y"].to(ScalarType.Float64).data<double>().ToArray();
        var design = SparseDesign.Multilevel(new[] { x.Select(_ => 1.0).ToArray(), x },
            new[] { (a.Select(v => (int)v).ToArray(), 5), (b.Select(v => (int)v).ToArray(), 4) });
        return new BinomialLogitRegression(design, y.Select(_ => 1.0).ToArray(), y);
    }

    private sealed class Respondent
    {
        public int A { get; set; }
        public int B { get; set; }
        public double X { get; set; }
        public float Y { get; set; }
    }

    [TestMethod]
    public void BadArgumentsAreRefusedByName()
    {
        var (levels, covariate, y) = Respondents();
        var pass = Pass(levels, covariate, y);
        Assert.AreEqual("ridge", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => BinomialLogitControlVariate.AtPenalizedMode(pass, ridge: 0)).ParamName);
        Assert.AreEqual("maxPasses", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => BinomialLogitControlVariate.AtPenalizedMode(pass, maxPasses: 0)).ParamName);
        Assert.AreEqual("reference", Assert.ThrowsExactly<ArgumentException>(() => BinomialLogitControlVariate.About(pass, new double[] { double.NaN, 0 })).ParamName);
        Assert.AreEqual("reference", Assert.ThrowsExactly<ArgumentException>(() => BinomialLogitControlVariate.About(pass, new double[3])).ParamName);
        Assert.AreEqual("pass", Assert.ThrowsExactly<ArgumentException>(() => BinomialLogitControlVariate.About(() => Array.Empty<BinomialLogitRegression>(), new double[3])).ParamName);
        using var variate = BinomialLogitControlVariate.AtPenalizedMode(pass, maxPasses: 1);
        Assert.AreEqual(1, variate.Passes);
        var part = RegressionOf(new[] { 1, 2, 3 }, levels, covariate, y);
        var other = new BinomialLogitRegression(SparseDesign.FromDense(new double[] { 1, 0 }, 1, 2), new[] { 1.0 }, new[] { 0.0 });
        Assert.AreEqual("minibatch", Assert.ThrowsExactly<ArgumentException>(() => variate.LogLikelihood(other, torch.zeros(Columns, dtype: ScalarType.Float64), 2)).ParamName);
        Assert.AreEqual("coefficients", Assert.ThrowsExactly<ArgumentException>(() => variate.LogLikelihood(part, torch.zeros(3, dtype: ScalarType.Float64), 2)).ParamName);
        Assert.AreEqual("scale", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => variate.LogLikelihood(part, torch.zeros(Columns, dtype: ScalarType.Float64), 0)).ParamName);
        Assert.AreEqual("scale", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => variate.LogLikelihood(part, torch.zeros(Columns, dtype: ScalarType.Float64), double.NaN)).ParamName);
    }

    private static (double Mean, double Sd) MeanAndSd(double[] values)
    {
        double mean = values.Average();
        return (mean, Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1)));
    }
}
