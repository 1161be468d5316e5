using Microsoft.ML.NormalizingFlows.Persistence;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>The presets' optional last layer, a per-coordinate spline: identity at start, trained, saved and loaded.</summary>
[TestClass]
public sealed class MarginalSplineTests
{
    [TestMethod]
    public void ThePresetSettingAddsAnIdentityStartingSplineThatSavesAndLoads()
    {
        var settings = new Dictionary<string, string> { ["marginal-spline"] = "true", ["bins"] = "6", ["bound"] = "4" };
        var with = FlowFactory.Create("realnvp", 3, 2, seed: 1, settings);
        var without = FlowFactory.Create("realnvp", 3, 2, seed: 1);
        var spline = with.modules().OfType<MarginalSplineTransform>().Single();
        Assert.AreEqual(6, spline.Bins);
        Assert.AreEqual(4.0, spline.Bound);
        var x = torch.randn(5, 3, generator: new Generator(2)) * 2;
        using (torch.no_grad())
            Assert.AreEqual(0f, (with.LogProb(x) - without.LogProb(x)).abs().max().item<float>(), 1e-5f, "identity at start");

        // A skewed target: a fit moves the knots; the saved flow gives the same density after loading.
        var skewed = Target.FromDelegate("skewed", 3, z => -0.5 * z.square().sum(1) + 2 * torch.nn.functional.softplus(z[.., 0]) - z[.., 0]);
        VariationalTrainer.Fit(with, skewed, new TrainerOptions { Iterations = 150, BatchSize = 64, LearningRate = 1e-2, Seed = 1 });
        Assert.IsTrue(spline.parameters().Single().abs().sum().item<float>() > 0, "training reached the knots");
        using var stream = new MemoryStream();
        FlowSerializer.Save(with, stream);
        stream.Position = 0;
        var loaded = FlowSerializer.Load(stream);
        using (torch.no_grad())
            Assert.AreEqual(0f, (with.LogProb(x) - loaded.LogProb(x)).abs().max().item<float>(), 1e-5f, "same density after loading");
    }

    [TestMethod]
    public void TheSettingIsCheckedLikeEveryOther()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() =>
            FlowFactory.Create("realnvp", 3, 2, seed: 1, new Dictionary<string, string> { ["marginal-spline"] = "perhaps" }));
        StringAssert.Contains(e.Message, "marginal-spline");
    }
}
