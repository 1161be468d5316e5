using Microsoft.ML.NormalizingFlows.Diagnostics;
using Microsoft.ML.NormalizingFlows.Tests.Training;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Diagnostics;

[TestClass]
public sealed class FitReportTests
{
    public TestContext TestContext { get; set; } = null!;

    private static TrainerOptions Options => new() { Iterations = 600, BatchSize = 128, LearningRate = 0.03, Seed = 2, ConvergenceWindow = 100, Threads = 1 };

    [TestMethod]
    public void NormalTrainedByReverseKlOnStudentT3IsNotReliable()
    {
        // log p̃ of a Student-t with 3 d.o.f. (unnormalized): −2 log(1 + z²/3).
        var t3 = Target.FromDelegate("student-t3", 1, z => (1 + z.square() / 3).log().sum(1).mul(-2));
        var q = new FlowDistribution(new DiagonalNormal(1));
        var fit = VariationalTrainer.Fit(q, t3, Options);
        var report = FitReport.Create(q, t3, fit);
        TestContext.WriteLine(report.Format());
        Assert.IsTrue(report.ParetoK > 0.7, $"k̂ = {report.ParetoK}");
        Assert.AreEqual(FitVerdict.NotReliable, report.Verdict);
        StringAssert.Contains(report.Format(), "NOT RELIABLE");
    }

    [TestMethod]
    public void FullRankOnACorrelatedGaussianIsReliable()
    {
        var target = GaussianFixtures.Correlated(0.8);
        var q = new FlowDistribution(new FullRankNormal(2));
        var fit = VariationalTrainer.Fit(q, target, Options);
        var report = FitReport.Create(q, target, fit);
        TestContext.WriteLine(report.Format());
        Assert.IsTrue(report.ParetoK < 0.5, $"k̂ = {report.ParetoK}");
        Assert.AreEqual(FitVerdict.Reliable, report.Verdict);
        Assert.IsTrue(report.Kl is < 0.05, $"KL {report.Kl}");
        Assert.IsTrue(report.EffectiveSampleSize > 5_000);
        StringAssert.Contains(report.ToString(), "RELIABLE");
        StringAssert.Contains(report.ToString(), "iterations  600");
    }
}
