using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Modeling;
using Microsoft.ML.NormalizingFlows.Modeling.Constraints;
using Microsoft.ML.NormalizingFlows.Modeling.Distributions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Modeling;

/// <summary>The recipe, the draws by name and the summary, on a conjugate model whose posterior is known exactly.</summary>
[TestClass]
public sealed class PosteriorFitTests
{
    public TestContext TestContext { get; set; } = null!;

    // y_i ~ N(mu, 1), mu ~ N(0, 10): the posterior of mu is N(n ȳ / (n + 1/100), 1 / (n + 1/100)).
    // s ~ LogNormal(0, 0.5) with no data: its posterior is its prior (a constrained parameter with a known answer).
    private static readonly double[] Y = { 1.2, 0.4, 2.2, 1.9, 0.8, 1.5, 1.1, 0.3 };
    private static double PosteriorPrecision => Y.Length + 0.01;
    private static double PosteriorMean => Y.Sum() / PosteriorPrecision;
    private static double PosteriorSd => 1 / Math.Sqrt(PosteriorPrecision);

    private static BayesianModel Conjugate() => new BayesianModel("conjugate")
        .Parameter("mu")
        .Parameter("s", Constraint.Positive)
        .Data("y", Y)
        .LogDensity(m => new Normal(0, 10).LogProb(m["mu"]) + new LogNormal(0, 0.5).LogProb(m["s"])
                         + new Normal(m["mu"].unsqueeze(1), torch.ones(1, dtype: m["mu"].dtype)).LogProb(m.Data("y")).sum(1));

    private static PosteriorFitOptions Quick(ApproximationFamily family) => new()
    {
        Family = family, ModeIterations = 300, GaussianIterations = 1_500, FlowIterations = 800, FlowLayers = 2,
        FlowSettings = new() { ["hidden"] = "16" }, FlowFits = 1, MaxRestarts = 0, EvaluationDraws = 1_000, ReportSamples = 2_000, Threads = 1,
    };

    [TestMethod]
    [DataRow(ApproximationFamily.FullRankGaussian)]
    [DataRow(ApproximationFamily.MeanFieldGaussian)]
    [DataRow(ApproximationFamily.Flow)]
    public void TheRecipeRecoversAKnownPosteriorByName(ApproximationFamily family)
    {
        // The report at the default S = 10,000: k̂ of a q this close to p (KL under 1e-4) is noisy at S = 2,000, from
        // 0.1 to 1.2 across seeds for these flows with or without the LU mixing, and the verdict is checked below.
        var options = Quick(family);
        options.ReportSamples = 10_000;
        var fit = Conjugate().Fit(options);
        foreach (var stage in fit.Stages) TestContext.WriteLine($"{stage.Name}: {stage.Elapsed.TotalSeconds:F1} s, ELBO {stage.Elbo:F3}, {stage.Detail}");
        var summary = fit.Summary(20_000);
        TestContext.WriteLine(summary.Format());
        Assert.AreEqual(PosteriorMean, summary["mu"].Mean, 0.05 * PosteriorSd, "mu's mean");
        Assert.AreEqual(PosteriorSd, summary["mu"].Sd, 0.05 * PosteriorSd, "mu's sd");
        double priorMean = Math.Exp(0.125), priorSd = Math.Sqrt((Math.Exp(0.25) - 1) * Math.Exp(0.25));
        Assert.AreEqual(priorMean, summary["s"].Mean, 0.05 * priorSd, "s's mean (lognormal: the constraint's Jacobian is right)");
        Assert.AreEqual(priorSd, summary["s"].Sd, 0.1 * priorSd, "s's sd");
        Assert.AreEqual(Math.Exp(0), summary["s"].Q50, 0.05, "s's median");
        Assert.AreNotEqual(Microsoft.ML.NormalizingFlows.Diagnostics.FitVerdict.NotReliable, fit.Report.Verdict);
        Assert.AreEqual(family == ApproximationFamily.MeanFieldGaussian ? 3 : family == ApproximationFamily.FullRankGaussian ? 3 : 4, fit.Stages.Count);
    }

    /// <summary>
    /// A posterior ten thousand times narrower in one coordinate than in the other (mu: 10⁸ observations with unit noise,
    /// sd 1e-4; s: its LogNormal(0, 1) prior). Adam moves each Gaussian parameter about one learning rate a step, so with
    /// the initial sd 0.1 everywhere mu's mean wandered by about a hundred posterior sds; the stage now works in units of
    /// the mode's curvature and recovers both.
    /// </summary>
    [TestMethod]
    [DataRow(ApproximationFamily.FullRankGaussian)]
    [DataRow(ApproximationFamily.MeanFieldGaussian)]
    public void TheGaussianStageWorksInUnitsOfTheModesCurvature(ApproximationFamily family)
    {
        const double n = 1e8, mean = 0.3;
        var model = new BayesianModel("narrow")
            .Parameter("mu")
            .Parameter("s", Constraint.Positive)
            .LogDensity(m => new Normal(0, 10).LogProb(m["mu"]) + new LogNormal(0, 1).LogProb(m["s"]) - (m["mu"] - mean).square() * (n / 2));
        var fit = model.Fit(Quick(family));
        var summary = fit.Summary(20_000);
        TestContext.WriteLine(summary.Format());
        double sd = 1 / Math.Sqrt(n + 0.01);
        Assert.AreEqual(mean, summary["mu"].Mean, 0.1 * sd, "mu's mean");
        Assert.AreEqual(sd, summary["mu"].Sd, 0.1 * sd, "mu's sd");
        Assert.AreEqual(1, Math.Log(summary["s"].Q50) + 1, 0.05, "s's median (log s ~ N(0, 1))");
    }

    [TestMethod]
    public void CurvatureUnitsAreTheConditionalSdsOverTheInitialScaleClampedToOne()
    {
        var sds = new[] { 1e-3, 0.05, 0.1, 2.0 };
        var target = Target.FromDelegate("gaussian", 4, z => (z - 1.5).square().div(torch.tensor(sds, dtype: z.dtype).square()).sum(1).mul(-0.5));
        var units = PosteriorFitter.CurvatureUnits(target, torch.full(4, 1.5, dtype: ScalarType.Float64), 0.1);
        var expected = new[] { 1e-2, 0.5, 1, 1 };
        for (int i = 0; i < 4; i++) Assert.AreEqual(expected[i], units[i], 1e-6 * expected[i], $"unit {i}");
        // More coordinates than one block (128): every block finds its own.
        var wide = Enumerable.Range(0, 300).Select(i => 1e-3 * (1 + i % 7)).ToArray();
        var many = Target.FromDelegate("many", 300, z => z.square().div(torch.tensor(wide, dtype: z.dtype).square()).sum(1).mul(-0.5));
        var manyUnits = PosteriorFitter.CurvatureUnits(many, torch.zeros(300, dtype: ScalarType.Float64), 0.1);
        for (int i = 0; i < 300; i++) Assert.AreEqual(wide[i] / 0.1, manyUnits[i], 1e-6 * manyUnits[i], $"unit {i} of 300");
        // Convex or flat along a coordinate: no scale to follow, the unit stays 1.
        var odd = Target.FromDelegate("odd", 2, z => z[.., 0].square() * 0.5 + z[.., 1] * 0);
        CollectionAssert.AreEqual(new[] { 1.0, 1.0 }, PosteriorFitter.CurvatureUnits(odd, torch.zeros(2, dtype: ScalarType.Float64), 0.1));
    }

    [TestMethod]
    public void FoldingTheUnitsGivesTheSameGaussian()
    {
        var mode = new[] { 0.5, -2.0, 3.0 };
        var units = new[] { 1e-3, 0.2, 1.0 };
        foreach (var family in new BaseDistribution[] { new FullRankNormal(3, 0.1), new DiagonalNormal(3, 0.1) })
        {
            family.to(ScalarType.Float64);
            using (torch.no_grad())
                foreach (var (_, p) in family.named_parameters()) p.add_(torch.randn(p.shape, dtype: ScalarType.Float64, generator: new Generator(5)) * 0.3);
            var noise = torch.randn(7, 3, dtype: ScalarType.Float64, generator: new Generator(6));
            var (zUnits, logQUnits) = new FlowDistribution(family, new FixedAffineTransform(mode, units)).SampleFromNoise(noise);
            PosteriorFitter.FoldUnitsIntoGaussian(family, mode, units);
            var (z, logQ) = new FlowDistribution(family).SampleFromNoise(noise);
            AssertClose(zUnits.detach(), z.detach(), 1e-12, $"{family.GetType().Name}: draws");
            AssertClose(logQUnits.detach(), logQ.detach(), 1e-10, $"{family.GetType().Name}: log q");
        }
    }

    [TestMethod]
    public void DrawsComeByNameAsArraysDataViewsAndGeneratedQuantities()
    {
        var model = new BayesianModel("shapes")
            .Parameter("mu")
            .Parameter("w", Constraint.Simplex, 3)
            .LogDensity(m => new Normal(1, 0.5).LogProb(m["mu"]) + new Dirichlet(torch.tensor(new[] { 2.0, 3.0, 5.0 }, dtype: m["mu"].dtype)).LogProb(m["w"]));
        var fit = model.Fit(Quick(ApproximationFamily.FullRankGaussian));
        var draws = fit.Draws(3_000);
        Assert.AreEqual(3_000, draws.Count);
        var w = draws.Parameter("w");
        Assert.IsTrue(w.All(row => row.Length == 3 && Math.Abs(row.Sum() - 1) < 1e-12 && row.All(v => v >= 0)), "simplex draws");
        CollectionAssert.AreEqual(w.Select(r => r[1]).ToArray(), draws["w[2]"]);
        // Generated quantities: any function of the parameters, per draw.
        var total = draws.Generate(m => m["mu"] + m["w"].sum(1));
        Assert.AreEqual(draws["mu"][5] + 1, total[5][0], 1e-12);
        // An IDataView with named columns and slot names, plus the PSIS weight.
        var view = draws.ToDataView(new MLContext());
        CollectionAssert.AreEqual(new[] { "mu", "w", "Weight" }, view.Schema.Select(c => c.Name).ToArray());
        VBuffer<ReadOnlyMemory<char>> slots = default;
        view.Schema["w"].GetSlotNames(ref slots);
        CollectionAssert.AreEqual(new[] { "w[1]", "w[2]", "w[3]" }, slots.DenseValues().Select(s => s.ToString()).ToArray());
        var mus = view.GetColumn<double>("mu").ToArray();
        CollectionAssert.AreEqual(draws["mu"], mus);
        Assert.AreEqual(1.0, view.GetColumn<double>("Weight").Average(), 1e-9, "weights × S average 1");
        // The Dirichlet(2, 3, 5) means 0.2, 0.3, 0.5 show in the summary.
        var summary = draws.Summary();
        Assert.AreEqual(0.5, summary["w[3]"].WeightedMean, 0.03);
        StringAssert.Contains(summary.Format(), "w[3]");
        Assert.ThrowsExactly<KeyNotFoundException>(() => draws["nothing"]);
    }

    [TestMethod]
    public void TheMLNetEstimatorAcceptsAModel()
    {
        var ml = new MLContext(seed: 1);
        var estimator = ml.Transforms.NormalizingFlow(Conjugate(), new Microsoft.ML.NormalizingFlows.MLNet.NormalizingFlowEstimator.Options
        {
            Flow = "full-rank", Layers = 1, Iterations = 1_500, LearningRate = 0.02, Precision = Precision.Float64, ReportSamples = 2_000, Seed = 3,
        });
        var model = estimator.Fit(ml.Data.CreateEmptyRows(0));
        var draws = model.Generate(4_000);
        VBuffer<ReadOnlyMemory<char>> slots = default;
        draws.Schema["Sample"].GetSlotNames(ref slots);
        CollectionAssert.AreEqual(new[] { "mu", "unconstrained(s)" }, slots.DenseValues().Select(v => v.ToString()).ToArray());
        var mu = draws.GetColumn<float[]>("Sample").Select(z => (double)z[0]).ToArray();
        Assert.AreEqual(PosteriorMean, mu.Average(), 0.05);
        Assert.IsNotNull(model.FitReport);
    }

    [TestMethod]
    public void TheRecipesPreconditionedFlowSavesAndLoads()
    {
        // Reproduction: a preset wrapped in an affine map lost its spec, so the fitted q could not be saved.
        var fit = Conjugate().Fit(Quick(ApproximationFamily.Flow));
        using var stream = new MemoryStream();
        Microsoft.ML.NormalizingFlows.Persistence.FlowSerializer.Save(fit.Approximation, stream);
        stream.Position = 0;
        var loaded = Microsoft.ML.NormalizingFlows.Persistence.FlowSerializer.Load(stream);
        var z = torch.tensor(new[,] { { 1.1, 0.2 }, { 0.7, -0.4 } }, ScalarType.Float64);
        using var noGrad = torch.no_grad();
        var before = fit.Approximation.LogProb(z).data<double>().ToArray();
        var after = loaded.LogProb(z.to(loaded.Placement.DType)).to(ScalarType.Float64).data<double>().ToArray();
        CollectionAssert.AreEqual(before, after);
    }

    [TestMethod]
    public void TheFlowStagesWidthFollowsTheDimensionUnlessSet()
    {
        var automatic = new PosteriorFitOptions();
        CollectionAssert.AreEqual(new[] { 64, 64, 128, 128, 192, 256 }, new[] { 3, 64, 65, 108, 150, 1_000 }.Select(automatic.FlowHiddenFor).ToArray());
        Assert.AreEqual(32, new PosteriorFitOptions { FlowHidden = 32 }.FlowHiddenFor(108));
        // The width reaches the fitted flow's spec (so it saves), and a "hidden" setting takes precedence over it.
        var quick = Quick(ApproximationFamily.Flow);
        quick.FlowSettings = null;
        quick.FlowHidden = 24;
        Assert.AreEqual("24", Microsoft.ML.NormalizingFlows.Persistence.FlowDescription.Of(Conjugate().Fit(quick).Approximation).Spec.Settings!["hidden"]);
        Assert.AreEqual("16", Microsoft.ML.NormalizingFlows.Persistence.FlowDescription.Of(Conjugate().Fit(Quick(ApproximationFamily.Flow)).Approximation).Spec.Settings!["hidden"]);
        // Whatever its case, as the presets read settings.
        var upper = Quick(ApproximationFamily.Flow);
        upper.FlowSettings = new() { ["Hidden"] = "12" };
        Assert.AreEqual("12", Microsoft.ML.NormalizingFlows.Persistence.FlowDescription.Of(Conjugate().Fit(upper).Approximation).Spec.Settings!["Hidden"]);
        Assert.AreEqual("FlowHidden", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Conjugate().Fit(new PosteriorFitOptions { FlowHidden = 0 })).ParamName);
    }

    [TestMethod]
    public void CouplingFlowsAreMixedByALearnedLuMapUnlessSet()
    {
        static string? PermutationOf(PosteriorFit fit) =>
            Microsoft.ML.NormalizingFlows.Persistence.FlowDescription.Of(fit.Approximation).Spec.Settings!.TryGetValue("permutation", out var p) ? p : null;
        Assert.AreEqual("lu", new PosteriorFitOptions().FlowPermutationFor());
        Assert.AreEqual("lu", new PosteriorFitOptions { Flow = "NSF-coupling" }.FlowPermutationFor());
        Assert.IsNull(new PosteriorFitOptions { Flow = "iaf" }.FlowPermutationFor(), "autoregressive presets keep their own default (reverse)");
        Assert.AreEqual("lu", PermutationOf(Conjugate().Fit(Quick(ApproximationFamily.Flow))));
        var none = Quick(ApproximationFamily.Flow);
        none.FlowPermutation = "none";
        Assert.AreEqual("none", PermutationOf(Conjugate().Fit(none)));
        var setting = Quick(ApproximationFamily.Flow);
        setting.FlowSettings = new() { ["Permutation"] = "reverse" };
        Assert.AreEqual("reverse", Microsoft.ML.NormalizingFlows.Persistence.FlowDescription.Of(Conjugate().Fit(setting).Approximation).Spec.Settings!["Permutation"], "a setting takes precedence");
        Assert.AreEqual("FlowPermutation", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Conjugate().Fit(new PosteriorFitOptions { FlowPermutation = "shuffle" })).ParamName);
    }

    [TestMethod]
    public void BadRecipeSettingsAndGeneratedQuantitiesNameTheProblem()
    {
        var model = Conjugate();
        Assert.AreEqual("GaussianIterations", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Fit(new PosteriorFitOptions { GaussianIterations = 0 })).ParamName);
        Assert.AreEqual("FlowFits", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Fit(new PosteriorFitOptions { FlowFits = 0 })).ParamName);
        Assert.AreEqual("EvaluationDraws", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Fit(new PosteriorFitOptions { EvaluationDraws = 10 })).ParamName);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => model.Fit(new PosteriorFitOptions { Flow = "glow" })).Message, "Unknown flow 'glow'");
        var draws = model.Fit(Quick(ApproximationFamily.FullRankGaussian)).Draws(500);
        var e = Assert.ThrowsExactly<ArgumentException>(() => draws.Generate(m => m["mu"].sum()));
        StringAssert.Contains(e.Message, "one row per draw");
        Assert.ThrowsExactly<KeyNotFoundException>(() => draws.Parameter("nothing"));
    }

    [TestMethod]
    public void ParallelFlowFitsGiveTheSameFitsAsOneAfterTheOther()
    {
        PosteriorFitOptions Options(bool parallel)
        {
            var o = Quick(ApproximationFamily.Flow);
            o.FlowFits = 2;
            o.FlowIterations = 300;
            o.ParallelFlowFits = parallel;
            return o;
        }
        var serial = Conjugate().Fit(Options(false));
        var parallel = Conjugate().Fit(Options(true));
        var flowStages = (PosteriorFit f) => f.Stages.Where(s => s.Name.StartsWith("flow", StringComparison.Ordinal)).ToArray();
        Assert.AreEqual(2, flowStages(parallel).Length);
        CollectionAssert.AreEqual(flowStages(serial).Select(s => (s.Name, s.Elbo)).ToArray(), flowStages(parallel).Select(s => (s.Name, s.Elbo)).ToArray(),
            "each fit has its own seed and generator, so running them at once changes nothing");
        CollectionAssert.AreEqual(serial.Draws(500)["mu"], parallel.Draws(500)["mu"]);
    }

    [TestMethod]
    public void TheFlowStageTrainsWithTheGivenObjective()
    {
        var counting = new CountingObjective();
        var o = Quick(ApproximationFamily.Flow);
        o.FlowIterations = 150;
        o.FlowObjective = counting;
        Conjugate().Fit(o);
        Assert.AreEqual(150, counting.Calls, "one objective evaluation per flow step, none for the Gaussian stage");
    }

    private sealed class CountingObjective : Microsoft.ML.NormalizingFlows.Training.VariationalObjective
    {
        private readonly Microsoft.ML.NormalizingFlows.Training.ElboObjective inner = new();
        private int calls;

        public int Calls => calls;

        public override Microsoft.ML.NormalizingFlows.Training.ObjectiveTerms Compute(Microsoft.ML.NormalizingFlows.Distributions.FlowDistribution q,
            Microsoft.ML.NormalizingFlows.Targets.Target target, int batchSize, torch.Generator generator)
        {
            Interlocked.Increment(ref calls);
            return inner.Compute(q, target, batchSize, generator);
        }
    }
}
