namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class GaussianFamilyTests
{
    /// <summary>A correlated 2-D Gaussian N(μ, Σ), unnormalized, with its exact log Z = ½ log det(2πΣ).</summary>
    internal static Target CorrelatedGaussian(out double logZ)
    {
        double s1 = 1.5, s2 = 0.7, rho = 0.8;
        double det = s1 * s1 * s2 * s2 * (1 - rho * rho);
        logZ = 0.5 * Math.Log(Math.Pow(2 * Math.PI, 2) * det);
        double i11 = s2 * s2 / det, i22 = s1 * s1 / det, i12 = -rho * s1 * s2 / det;
        double m1 = 1.0, m2 = -2.0;
        return Target.FromDelegate("correlated-gaussian", 2, z =>
        {
            var a = z[.., 0] - m1;
            var b = z[.., 1] - m2;
            return -0.5 * (i11 * a.square() + 2 * i12 * a * b + i22 * b.square());
        }, logZ);
    }

    [TestMethod]
    public void SampledLogProbEqualsLogProbAtTheSample()
    {
        foreach (var baseDist in new BaseDistribution[] { new StandardNormal(3), new DiagonalNormal(3, 0.5), new FullRankNormal(3, 2.0) })
        {
            using (torch.no_grad())
                foreach (var p in baseDist.parameters()) p.add_(torch.randn(p.shape, generator: new Generator(3)) * 0.3);
            var (z, logQ) = baseDist.Sample(100, new Generator(5));
            double err = (logQ - baseDist.LogProb(z)).abs().max().ToDouble();
            Assert.IsTrue(err < 1e-4, $"{baseDist.GetType().Name}: sample log q differs from LogProb by {err}");
        }
    }

    [TestMethod]
    public void FullRankLogProbMatchesTheClosedForm()
    {
        var q = new FullRankNormal(2);
        q.to(ScalarType.Float64);
        using (torch.no_grad())
            foreach (var p in q.parameters()) p.copy_(torch.randn(p.shape, dtype: ScalarType.Float64, generator: new Generator(4)));
        var cov = q.Covariance;
        var z = torch.randn(10, 2, dtype: ScalarType.Float64, generator: new Generator(6));
        var diff = z - q.Location;
        var maha = (diff.matmul(torch.linalg.inv(cov)) * diff).sum(1);
        var expected = -0.5 * maha - 0.5 * torch.logdet(cov) - Math.Log(2 * Math.PI);
        Assert.IsTrue((q.LogProb(z) - expected).abs().max().ToDouble() < 1e-10);
    }

    [TestMethod]
    public void FullRankElboConvergesToTheExactLogNormalizer()
    {
        var target = CorrelatedGaussian(out double logZ);
        var q = FlowFactory.Create("full-rank", 2, 1, seed: 1);
        VariationalTrainer.Fit(q, target, new TrainerOptions { Iterations = 3000, BatchSize = 256, LearningRate = 0.02, Seed = 1, LearningRateDecay = 0.999 });
        var estimate = Evaluation.EstimateElbo(q, target, 20_000);
        Assert.IsTrue(estimate.Kl < 0.01, $"full-rank KL = {estimate.Kl:F4} (log Z = {logZ:F4}, ELBO = {estimate.Elbo:F4})");
    }

    [TestMethod]
    public void MeanFieldUnderestimatesCorrelationAsTheoryPredicts()
    {
        // Reverse-KL mean-field on a correlated Gaussian matches the precision's diagonal: sd_i = 1/√(Σ⁻¹)_ii.
        var target = CorrelatedGaussian(out _);
        var q = FlowFactory.Create("mean-field", 2, 1, seed: 2);
        VariationalTrainer.Fit(q, target, new TrainerOptions { Iterations = 3000, BatchSize = 256, LearningRate = 0.02, Seed = 2, LearningRateDecay = 0.999 });
        var scale = ((DiagonalNormal)q.Base).Scale;
        double expected1 = 1.5 * Math.Sqrt(1 - 0.64), expected2 = 0.7 * Math.Sqrt(1 - 0.64);
        Assert.AreEqual(expected1, scale[0].ToDouble(), 0.03);
        Assert.AreEqual(expected2, scale[1].ToDouble(), 0.02);
    }
}
