using Microsoft.ML.NormalizingFlows.Diagnostics;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Training;

/// <summary>Must-show 4: faults during training, each with its documented behaviour and finite parameters.</summary>
[TestClass]
public sealed class TrainerReliabilityTests
{
    public TestContext TestContext { get; set; } = null!;

    private static TrainerOptions Quick(int iterations = 400) => new()
    {
        Iterations = iterations, BatchSize = 64, LearningRate = 0.02, ConvergenceWindow = 50, ReportEvery = 50, Seed = 1,
    };

    private static bool AllFinite(FlowDistribution q) => q.parameters().All(p => p.isfinite().all().item<bool>());

    /// <summary>log p̃ = N(0, I) but NaN for z1 &gt; 1.5 (sqrt of a negative number): about 7% of q's initial draws.</summary>
    private static Target NanOnTheRight() =>
        Target.FromDelegate("nan-beyond-1.5", 2, z => (1.5 - z[.., 0]).sqrt().log() - 0.5 * z.square().sum(1));

    [TestMethod]
    public void NanTargetWithImportanceWeightedObjectiveDropsThoseDrawsAndTrains()
    {
        var q = new FlowDistribution(new DiagonalNormal(2));
        var options = Quick();
        options.Objective = new ImportanceWeightedElboObjective(1);
        var fit = VariationalTrainer.Fit(q, NanOnTheRight(), options);
        var report = FitReport.Create(q, NanOnTheRight(), fit, 2_000);
        TestContext.WriteLine(report.Format());
        Assert.AreEqual(FitStatus.Completed, fit.Status);
        Assert.IsTrue(fit.NonFiniteSamples > 0, "the dropped draws are counted");
        Assert.IsTrue(AllFinite(q));
        Assert.IsTrue(report.Reasons.Any(r => r.Contains("non-finite target")), "the report mentions them");
    }

    [TestMethod]
    public void ATargetComputedOutsideAutogradIsRejectedAtTheFirstStepNamingIt()
    {
        // Reproduction: log p̃ evaluated on host doubles and rebuilt as a tensor carries no gradient. Before the fix
        // training ran all its steps, reported "Completed, skipped 0" and returned the base distribution.
        var detached = Target.FromDelegate("host-side-normal", 2, z =>
        {
            var values = z.detach().to(ScalarType.Float64).cpu().data<double>().ToArray();
            var logP = new double[z.shape[0]];
            for (int i = 0; i < logP.Length; i++) logP[i] = -0.5 * ((values[2 * i] - 3) * (values[2 * i] - 3) + values[2 * i + 1] * values[2 * i + 1]);
            return tensor(logP).to(z.dtype);
        });
        foreach (var objective in new VariationalObjective[] { new ElboObjective(), new ImportanceWeightedElboObjective(4) })
        {
            var options = Quick(50);
            options.Objective = objective;
            var e = Assert.ThrowsExactly<TargetException>(() => VariationalTrainer.Fit(FlowFactory.Create("planar", 2, 2, seed: 0), detached, options));
            StringAssert.Contains(e.Message, "host-side-normal");
            StringAssert.Contains(e.Message, "does not depend on the flow's parameters");
        }
    }

    [TestMethod]
    public void NanTargetWithTheDefaultObjectiveSkipsStepsThenStopsDivergedWithFiniteParameters()
    {
        var q = new FlowDistribution(new DiagonalNormal(2));
        var e = Assert.ThrowsExactly<TrainingDivergedException>(() => VariationalTrainer.Fit(q, NanOnTheRight(), Quick()));
        Assert.AreEqual("log p̃ (target)", e.Term);
        var fit = e.Result!;
        var report = FitReport.Create(q, NanOnTheRight(), fit, 2_000);
        TestContext.WriteLine(report.Format());
        Assert.AreEqual(FitStatus.Diverged, fit.Status);
        StringAssert.Contains(fit.DivergenceReason, "log p̃ (target)");
        StringAssert.Contains(fit.DivergenceReason, "nan-beyond-1.5");
        Assert.IsTrue(fit.SkippedSteps >= 20);
        Assert.IsTrue(AllFinite(q));
        Assert.AreEqual(FitVerdict.NotReliable, report.Verdict);
        // Returning instead of throwing is one switch away.
        var options = Quick();
        options.ThrowOnDivergence = false;
        var returned = VariationalTrainer.Fit(new FlowDistribution(new DiagonalNormal(2)), NanOnTheRight(), options);
        Assert.AreEqual(FitStatus.Diverged, returned.Status);
    }

    [TestMethod]
    public void WrongShapeTargetFailsWithAnExceptionNamingIt()
    {
        var target = Target.FromDelegate("column-shaped", 2, z => z.square().sum(1, keepdim: true).neg());
        var q = new FlowDistribution(new DiagonalNormal(2));
        var e = Assert.ThrowsExactly<TargetException>(() => VariationalTrainer.Fit(q, target, Quick()));
        StringAssert.Contains(e.Message, "'column-shaped'");
        StringAssert.Contains(e.Message, "[64, 1]");
        Assert.IsTrue(AllFinite(q));
    }

    [TestMethod]
    public void ThrowingTargetFailsWithAnExceptionNamingItAndLeavesTheBestParameters()
    {
        int calls = 0;
        var target = Target.FromDelegate("flaky", 2, z =>
            ++calls > 120 ? throw new InvalidOperationException("the simulator crashed") : -0.5 * (z - 3).square().sum(1));
        var q = new FlowDistribution(new DiagonalNormal(2));
        var e = Assert.ThrowsExactly<TargetException>(() => VariationalTrainer.Fit(q, target, Quick()));
        StringAssert.Contains(e.Message, "'flaky'");
        StringAssert.Contains(e.Message, "the simulator crashed");
        Assert.IsInstanceOfType<InvalidOperationException>(e.InnerException);
        Assert.IsTrue(AllFinite(q));
        // Restored to the best window (iteration 100), which had moved toward the mode at (3, 3).
        using var noGrad = torch.no_grad();
        Assert.IsTrue(((DiagonalNormal)q.Base).Location.mean().item<float>() > 0.5);
    }

    [TestMethod]
    public void ExplodingParametersAreRestoredToTheBestAndTheFitReportsDivergence()
    {
        // A learning rate of 1e4 sends log σ to ±1e4 on the first Adam steps: σ overflows, every later step is non-finite.
        var q = new FlowDistribution(new DiagonalNormal(2));
        var options = Quick();
        options.LearningRate = 1e4;
        var fit = Assert.ThrowsExactly<TrainingDivergedException>(() => VariationalTrainer.Fit(q, GaussianFixtures.Correlated(0.5), options)).Result!;
        TestContext.WriteLine($"status {fit.Status}: {fit.DivergenceReason}; skipped {fit.SkippedSteps}, iterations {fit.Iterations}");
        Assert.AreEqual(FitStatus.Diverged, fit.Status);
        Assert.IsTrue(fit.RestoredBestParameters);
        Assert.IsTrue(AllFinite(q));
        var report = FitReport.Create(q, GaussianFixtures.Correlated(0.5), fit, 2_000);
        Assert.AreEqual(FitVerdict.NotReliable, report.Verdict);
        StringAssert.Contains(report.Format(), "DIVERGED");
    }

    [TestMethod]
    public void ElboFallingTowardMinusInfinityIsDivergence()
    {
        int calls = 0;
        var target = Target.FromDelegate("collapsing", 2, z => -0.5 * z.square().sum(1) - (++calls > 200 ? 1e5 * calls : 0));
        var q = new FlowDistribution(new DiagonalNormal(2));
        var fit = Assert.ThrowsExactly<TrainingDivergedException>(() => VariationalTrainer.Fit(q, target, Quick())).Result!;
        TestContext.WriteLine($"status {fit.Status}: {fit.DivergenceReason}");
        Assert.AreEqual(FitStatus.Diverged, fit.Status);
        StringAssert.Contains(fit.DivergenceReason, "below its best");
        Assert.AreEqual(200, fit.BestIteration);
        Assert.IsTrue(AllFinite(q));
    }

    [TestMethod]
    public void CancellationReturnsTheBestSoFarModelMarkedCancelled()
    {
        using var cancel = new CancellationTokenSource();
        var progress = new InlineProgress<TrainingProgress>(p => { if (p.Iteration == 300) cancel.Cancel(); });
        var target = GaussianFixtures.Correlated(0.5);
        var q = new FlowDistribution(new DiagonalNormal(2));
        var fit = VariationalTrainer.Fit(q, target, Quick(5_000), progress, cancel.Token);
        var report = FitReport.Create(q, target, fit, 2_000);
        TestContext.WriteLine(report.Format());
        Assert.AreEqual(FitStatus.Cancelled, fit.Status);
        Assert.IsTrue(fit.Cancelled && report.Cancelled);
        Assert.AreEqual(300, fit.Iterations);
        Assert.IsTrue(fit.RestoredBestParameters && fit.BestIteration > 0);
        Assert.IsTrue(AllFinite(q));
        StringAssert.Contains(report.Format(), "CANCELLED");
    }

    [TestMethod]
    public void EarlyStoppingOnAPlateauKeepsTheBestParameters()
    {
        var q = new FlowDistribution(new DiagonalNormal(2));
        var options = Quick(20_000);
        options.LearningRate = 0.05;
        options.EarlyStoppingPatience = 4;
        options.EarlyStoppingTolerance = 0.01;
        options.Schedule = LearningRateSchedule.Plateau(patience: 2);
        options.WarmupIterations = 50;
        options.GradientClipNorm = 10;
        var fit = VariationalTrainer.Fit(q, GaussianFixtures.Diagonal(new[] { 1.0, -1.0 }, new[] { 0.5, 2.0 }), options);
        TestContext.WriteLine($"stopped at {fit.Iterations} (best window {fit.BestIteration}, smoothed ELBO {fit.BestSmoothedElbo:F4}); final lr {fit.FinalLearningRate:g3}");
        Assert.AreEqual(FitStatus.StoppedEarly, fit.Status);
        Assert.IsTrue(fit.Iterations < 5_000);
        Assert.AreEqual(fit.Iterations / 50, fit.SmoothedElbo.Count);
        Assert.AreEqual(fit.SmoothedElbo.Max(p => p.Elbo), fit.BestSmoothedElbo, 1e-12);
        var (mean, scale) = GaussianFixtures.Moments((DiagonalNormal)q.Base);
        Assert.AreEqual(1.0, mean[0], 0.1);
        Assert.AreEqual(2.0, scale[1], 0.2);
    }

    [TestMethod]
    public void AFitShorterThanOneWindowKeepsItsTrainedParameters()
    {
        var q = new FlowDistribution(new DiagonalNormal(2));
        var options = Quick(30);
        options.LearningRate = 0.1;
        var fit = VariationalTrainer.Fit(q, GaussianFixtures.Diagonal(new[] { 2.0, 2.0 }, new[] { 1.0, 1.0 }), options);
        Assert.AreEqual(30, fit.BestIteration);
        Assert.AreEqual(1, fit.SmoothedElbo.Count);
        using var noGrad = torch.no_grad();
        Assert.IsTrue(((DiagonalNormal)q.Base).Location.mean().item<float>() > 1, "moved toward the mode, not reset to the initial parameters");
    }

    [TestMethod]
    public void SchedulesAndWarmupGiveTheDocumentedFactors()
    {
        Assert.AreEqual(0.9 * 0.9, LearningRateSchedule.Exponential(0.9).Factor(3, 10), 1e-12);
        var cosine = LearningRateSchedule.Cosine(0.1);
        Assert.AreEqual(1.0, cosine.Factor(1, 11), 1e-12);
        Assert.AreEqual(0.55, cosine.Factor(6, 11), 1e-12);
        Assert.AreEqual(0.1, cosine.Factor(11, 11), 1e-12);
        var plateau = LearningRateSchedule.Plateau(0.5, patience: 2, threshold: 0.01);
        foreach (var elbo in new[] { -3.0, -2.0, -2.001, -2.0 }) plateau.ObserveSmoothedElbo(elbo);
        Assert.AreEqual(0.5, plateau.Factor(1, 1), 1e-12);
        plateau.Reset();
        Assert.AreEqual(1.0, plateau.Factor(1, 1));
        var options = new TrainerOptions { LearningRate = 0.1, WarmupIterations = 10, Iterations = 100 };
        Assert.AreEqual(0.03, VariationalTrainer.LearningRateAt(3, options, LearningRateSchedule.Constant()), 1e-12);
        Assert.AreEqual(0.1, VariationalTrainer.LearningRateAt(50, options, LearningRateSchedule.Constant()), 1e-12);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => LearningRateSchedule.Exponential(1.5));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainerOptions { GradientClipNorm = 0 }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainerOptions { ConvergenceWindow = 0 }.Validate());
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new TrainerOptions { EarlyStoppingPatience = 0 }.Validate());
    }
}
