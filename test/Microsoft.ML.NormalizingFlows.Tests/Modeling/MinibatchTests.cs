using Microsoft.ML;
using Microsoft.ML.NormalizingFlows.Modeling;
using Microsoft.ML.NormalizingFlows.Modeling.Constraints;
using Microsoft.ML.NormalizingFlows.Modeling.Distributions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Modeling;

/// <summary>Doubly stochastic VI: a likelihood streamed from an IDataView in minibatches, scaled by N/B.</summary>
[TestClass]
public sealed class MinibatchTests
{
    public TestContext TestContext { get; set; } = null!;

    private sealed class Observation { public float Y { get; set; } public int Group { get; set; } }

    private static (MLContext Ml, IDataView View, double[] Y) Data(int rows = 5_000)
    {
        var random = new Random(4);
        var y = Enumerable.Range(0, rows).Select(_ => 1 + 2 * Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble())).ToArray();
        var ml = new MLContext(seed: 1);
        return (ml, ml.Data.LoadFromEnumerable(y.Select((v, i) => new Observation { Y = (float)v, Group = i % 3 })), y);
    }

    private static Tensor Prior(ModelContext m) => new Normal(0, 10).LogProb(m["mu"]) + new HalfNormal(5).LogProb(m["sigma"]);

    [TestMethod]
    public void TheMinibatchedLogDensityIsAnUnbiasedEstimateOfTheFullOne()
    {
        var (ml, view, y) = Data();
        var full = new BayesianModel("full").Parameter("mu").Parameter("sigma", Constraint.Positive)
            .Data("y", y.Select(v => (double)(float)v).ToArray())
            .LogDensity(m => Prior(m) + new Normal(m["mu"].unsqueeze(1), m["sigma"].unsqueeze(1)).LogProb(m.Data("y").unsqueeze(0)).sum(1));
        var streamed = new BayesianModel("streamed").Parameter("mu").Parameter("sigma", Constraint.Positive)
            .Minibatch(ml, view, 100, "Y", "Group")
            .LogDensity(m => Prior(m) + m.Minibatch.ScaledSum(new Normal(m["mu"].unsqueeze(1), m["sigma"].unsqueeze(1)).LogProb(m.Minibatch["Y"].unsqueeze(0))));
        Assert.AreEqual(5_000, streamed.Minibatches!.Rows);
        var z = torch.tensor(new[,] { { 0.9, Math.Log(2.1) }, { 1.5, Math.Log(1.5) } }, ScalarType.Float64);
        var exact = full.AsTarget().Evaluate(z).data<double>().ToArray();
        var target = streamed.AsTarget();
        int repeats = 730; // 14.6 passes over the data: not whole epochs, so the check is not exact by construction
        var estimates = Enumerable.Range(0, repeats).Select(_ => target.Evaluate(z).data<double>().ToArray()).ToArray();
        for (int p = 0; p < 2; p++)
        {
            var values = estimates.Select(e => e[p]).ToArray();
            double mean = values.Average();
            double se = Math.Sqrt(values.Select(v => (v - mean) * (v - mean)).Sum() / (repeats - 1) / repeats);
            TestContext.WriteLine($"point {p}: full {exact[p]:F3}, minibatch mean {mean:F3} ± {se:F3}");
            Assert.IsTrue(Math.Abs(mean - exact[p]) < 4 * se, $"point {p}: {mean} vs {exact[p]} (se {se})");
            Assert.IsTrue(se > 0, "the estimate does vary between batches");
        }
        // Group keys stream as int64 indices.
        var groups = new BayesianModel("groups").Parameter("mu").Minibatch(ml, view, 7, "Group")
            .LogDensity(m => { Assert.AreEqual(ScalarType.Int64, m.Minibatch["Group"].dtype); return new Normal(0, 1).LogProb(m["mu"]); });
        groups.AsTarget().Evaluate(torch.zeros(1, 1));
    }

    [TestMethod]
    public void AStreamedModelFitsTheSamePosterior()
    {
        var (ml, view, y) = Data(2_000);
        var streamed = new BayesianModel("streamed").Parameter("mu").Parameter("sigma", Constraint.Positive)
            .Minibatch(ml, view, 200, "Y")
            .LogDensity(m => Prior(m) + m.Minibatch.ScaledSum(new Normal(m["mu"].unsqueeze(1), m["sigma"].unsqueeze(1)).LogProb(m.Minibatch["Y"].unsqueeze(0))));
        var fit = streamed.Fit(new PosteriorFitOptions { Family = ApproximationFamily.FullRankGaussian, ModeIterations = 500, GaussianIterations = 3_000, EvaluationDraws = 500, ReportSamples = 500, Threads = 1 });
        var summary = fit.Draws(4_000).Summary();
        double mean = y.Average(), sd = Math.Sqrt(y.Select(v => (v - mean) * (v - mean)).Sum() / y.Length);
        TestContext.WriteLine(summary.Format());
        Assert.AreEqual(mean, summary["mu"].Mean, 0.03, "mu's posterior mean is the sample mean");
        Assert.AreEqual(sd / Math.Sqrt(y.Length), summary["mu"].Sd, 0.3 * sd / Math.Sqrt(y.Length), "mu's posterior sd");
        Assert.AreEqual(sd, summary["sigma"].Mean, 0.05);
    }

    [TestMethod]
    public void StreamedFlowFitsAreComparedBeyondTheirMinibatchNoise()
    {
        // 20-row minibatches of 5,000 rows: an ELBO estimate's minibatch noise is hundreds of nats, so two fits of the
        // same posterior "disagree" by far more than RestartTolerance unless the noise is allowed for.
        var (ml, view, _) = Data();
        var streamed = new BayesianModel("streamed").Parameter("mu").Parameter("sigma", Constraint.Positive)
            .Minibatch(ml, view, 20, "Y")
            .LogDensity(m => Prior(m) + m.Minibatch.ScaledSum(new Normal(m["mu"].unsqueeze(1), m["sigma"].unsqueeze(1)).LogProb(m.Minibatch["Y"].unsqueeze(0))));
        var fit = streamed.Fit(new PosteriorFitOptions
        {
            ModeIterations = 200, GaussianIterations = 300, FlowIterations = 150, FlowLayers = 2, FlowFits = 2, MaxRestarts = 2,
            EvaluationDraws = 320, ReportSamples = 500, Threads = 1,
        });
        var flows = fit.Stages.Where(s => s.Name.StartsWith("flow", StringComparison.Ordinal)).ToArray();
        foreach (var stage in fit.Stages) TestContext.WriteLine($"{stage.Name}: ELBO {stage.Elbo:F1}, {stage.Detail}");
        Assert.AreEqual(2, flows.Length, "no restarts for fits that differ only by minibatch noise");
        Assert.IsTrue(flows.All(f => f.Detail.Contains("minibatch noise")), "each streamed fit reports its ELBO's standard error");
        double elboGap = Math.Abs(flows[0].Elbo - flows[1].Elbo);
        Assert.IsTrue(elboGap > 0.5, $"the test needs estimates noisier than the tolerance; they differ by {elboGap:F2} nats");

        // The rule itself: the bare tolerance when the standard errors are 0 (in memory), widened by 2 se of the difference.
        static (double, double) Fit(double elbo, double se) => (elbo, se);
        Assert.IsTrue(PosteriorFitter.Agree(Fit(-10.0, 0), Fit(-10.4, 0), 0.5));
        Assert.IsFalse(PosteriorFitter.Agree(Fit(-10.0, 0), Fit(-10.6, 0), 0.5));
        Assert.IsTrue(PosteriorFitter.Agree(Fit(-10.0, 3), Fit(-18.0, 4), 0.5)); // 8 ≤ 0.5 + 2 · 5
        Assert.IsFalse(PosteriorFitter.Agree(Fit(-10.0, 3), Fit(-21.0, 4), 0.5));
    }

    private sealed class Indexed { public int Index { get; set; } }

    [TestMethod]
    public void EachPassOfTheShuffledStreamHoldsEveryRowOnce()
    {
        // 7-row batches over 50 rows: batches straddle the passes, and the reader's two buffer sets alternate.
        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 50).Select(i => new Indexed { Index = i }));
        var source = new BayesianModel("indexed").Parameter("mu").Minibatch(ml, view, 7, "Index").Minibatches!;
        var stream = new List<long>();
        for (int b = 0; b < 50; b++)
        {
            using var scope = torch.NewDisposeScope();
            stream.AddRange(source.Next()["Index"].data<long>().ToArray());
        }
        for (int pass = 0; pass < 7; pass++)
            CollectionAssert.AreEquivalent(Enumerable.Range(0, 50).Select(i => (long)i).ToArray(), stream.Skip(50 * pass).Take(50).ToArray(), $"pass {pass}");
        CollectionAssert.AreNotEqual(stream.Take(50).ToArray(), stream.Skip(50).Take(50).ToArray(), "each pass is shuffled anew");
    }

    [TestMethod]
    public void BadStreamsAreClearErrors()
    {
        var (ml, view, _) = Data(10);
        var model = new BayesianModel("m").Parameter("mu");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Minibatch(ml, view, 5, "Nope"));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new BayesianModel("n").Minibatch(ml, view, 0, "Y"));
        var noStream = new BayesianModel("none").Parameter("mu").LogDensity(m => m.Minibatch["Y"]);
        StringAssert.Contains(Assert.ThrowsExactly<TargetException>(() => noStream.AsTarget().Evaluate(torch.zeros(1, 1))).Message, "streams no minibatches");
    }
}
