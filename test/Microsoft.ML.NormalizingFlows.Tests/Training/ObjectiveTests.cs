using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Training;

[TestClass]
public sealed class ObjectiveTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void IwElboWithOneInnerSampleIsTheElbo()
    {
        var target = TargetGallery.Create("ring");
        var q = FlowFactory.Create("planar", 2, 4, seed: 1);
        var elbo = new ElboObjective().Compute(q, target, 256, new Generator(5));
        var iw = new ImportanceWeightedElboObjective(1).Compute(q, target, 256, new Generator(5));
        Assert.AreEqual(elbo.Elbo.ToDouble(), iw.Elbo.ToDouble(), 1e-5);
        Assert.AreEqual(elbo.Loss.item<float>(), iw.Loss.item<float>(), 1e-4);
    }

    [TestMethod]
    public void IwElboWithTenInnerSamplesIsATighterBoundAtTheSameParameters()
    {
        // Must-show 3a: mean-field q at its reverse-KL optimum on a ρ = 0.8 Gaussian (σ_i = √(1 − ρ²)).
        const double rho = 0.8;
        var target = GaussianFixtures.Correlated(rho);
        var normal = new DiagonalNormal(2);
        GaussianFixtures.Set(normal, "logScale", new[] { 0.5 * Math.Log(1 - rho * rho), 0.5 * Math.Log(1 - rho * rho) });
        var q = new FlowDistribution(normal);
        using var noGrad = torch.no_grad();
        double elbo = new ImportanceWeightedElboObjective(1).Compute(q, target, 100_000, new Generator(1)).Elbo.ToDouble();
        double iw10 = new ImportanceWeightedElboObjective(10).Compute(q, target, 10_000, new Generator(2)).Elbo.ToDouble();
        double logZ = target.LogNormalizer!.Value;
        TestContext.WriteLine($"log Z = {logZ:F4}; ELBO (M = 1) = {elbo:F4} (gap {logZ - elbo:F4}); IW-ELBO (M = 10) = {iw10:F4} (gap {logZ - iw10:F4})");
        // Exact ELBO gap here is KL(q‖p) = −½ log(1 − ρ²)... = 0.5108 nats; the IW bound must close a good part of it.
        Assert.AreEqual(-0.5 * Math.Log(1 - rho * rho), logZ - elbo, 0.01);
        Assert.IsTrue(iw10 > elbo + 0.2, $"IW-ELBO {iw10} vs ELBO {elbo}");
        Assert.IsTrue(iw10 <= logZ + 0.01, "still a lower bound");
    }

    [TestMethod]
    public void SticksTheLandingGradientVanishesAtTheOptimumWhileTheStandardOneDoesNot()
    {
        var target = GaussianFixtures.Diagonal(new[] { 1.0, -2.0 }, new[] { 0.5, 2.0 });
        var normal = new DiagonalNormal(2);
        GaussianFixtures.Set(normal, "loc", new[] { 1.0, -2.0 });
        GaussianFixtures.Set(normal, "logScale", new[] { Math.Log(0.5), Math.Log(2.0) });
        var q = new FlowDistribution(normal);
        double standard = GradientVariance(q, target, GradientEstimator.Standard);
        double stl = GradientVariance(q, target, GradientEstimator.StickingTheLanding);
        TestContext.WriteLine($"mean-field at the optimum: gradient variance (summed over parameters, batch 64): standard = {standard:E3}, STL = {stl:E3}");
        Assert.IsTrue(standard > 1e-3, $"standard {standard}");
        Assert.IsTrue(stl < 1e-6 * standard, $"STL {stl} vs standard {standard}");
    }

    [TestMethod]
    public void SticksTheLandingWorksForFullRankAndForFlowsThroughTheJacobianRoute()
    {
        const double rho = 0.6;
        var target = GaussianFixtures.Correlated(rho);
        var full = new FullRankNormal(2);
        // Σ = L Lᵀ with L = [[1, 0], [ρ, √(1 − ρ²)]].
        GaussianFixtures.Set(full, "offDiagonal", new[] { 0.0, 0.0, rho, 0.0 });
        GaussianFixtures.Set(full, "logDiagonal", new[] { 0.0, 0.5 * Math.Log(1 - rho * rho) });
        var fullRank = new FlowDistribution(full);
        // The same optimum as a "flow": full-rank base pushed through a radial layer that is exactly the
        // identity (β = softplus(β̂) − softplus(α̂) = 0) but still has parameters, so the Jacobian route
        // (not the closed form) is used.
        var radial = new RadialFlow(2, 1, generator: new Generator(3));
        GaussianFixtures.Set(radial, "alphaRaw", new[] { 0.0 });
        GaussianFixtures.Set(radial, "betaRaw", new[] { 0.0 });
        var flow = new FlowDistribution(full, radial);
        foreach (var (name, q) in new[] { ("full-rank", fullRank), ("full-rank + radial", flow) })
        {
            double standard = GradientVariance(q, target, GradientEstimator.Standard, 20);
            double stl = GradientVariance(q, target, GradientEstimator.StickingTheLanding, 20);
            TestContext.WriteLine($"{name} at the optimum: standard = {standard:E3}, STL = {stl:E3}");
            Assert.IsTrue(stl < 1e-3 * standard, $"{name}: STL {stl} vs standard {standard}");
        }
    }

    [TestMethod]
    public void JacobianRouteScoreMatchesFiniteDifferencesOfLogQ()
    {
        torch.set_default_dtype(ScalarType.Float64);
        try
        {
            var q = FlowFactory.Create("planar", 2, 6, seed: 4);
            q.to(ScalarType.Float64);
            var noise = torch.randn(5, 2, dtype: ScalarType.Float64, generator: new Generator(9));
            Tensor score;
            var parameters = q.parameters().ToList();
            foreach (var p in parameters) p.requires_grad = false;
            try { score = StoppedParameterLogProb.ScoreAtDraws(q, noise); }
            finally { foreach (var p in parameters) p.requires_grad = true; }
            using var noGrad = torch.no_grad();
            var (z, _) = q.SampleFromNoise(noise);
            const double h = 1e-5;
            for (int j = 0; j < 2; j++)
            {
                var step = torch.zeros(1, 2, dtype: ScalarType.Float64);
                step[0, j] = h;
                var numeric = (q.LogProb(z + step) - q.LogProb(z - step)) / (2 * h);
                var difference = (numeric - score[.., j]).abs().max().item<double>();
                Assert.IsTrue(difference < 1e-5, $"component {j}: max |numeric − Jacobian route| = {difference}");
            }
        }
        finally { torch.set_default_dtype(ScalarType.Float32); }
    }

    [TestMethod]
    public void PlanarClosedFormScoreMatchesTheJacobianRouteOnEveryPathAndBase()
    {
        // Large parameters (scale 0.8) so that layers bend and contract strongly; both bases; the compiled CPU pass
        // and the tensor-operation path (which other devices take).
        foreach (bool learnableBase in new[] { false, true })
        foreach (bool fused in new[] { true, false })
        {
            var planar = new PlanarFlow(2, 7, initScale: 0.8, generator: new Generator(11)) { DisableFusedKernel = !fused };
            BaseDistribution baseDistribution = learnableBase ? new DiagonalNormal(2) : new StandardNormal(2);
            var q = new FlowDistribution(baseDistribution, planar);
            q.to(ScalarType.Float64);
            if (learnableBase)
                using (torch.no_grad())
                {
                    GaussianFixtures.Set(baseDistribution, "loc", new[] { 0.4, -1.1 });
                    GaussianFixtures.Set(baseDistribution, "logScale", new[] { -0.7, 0.9 });
                }
            var noise = torch.randn(9, 2, dtype: ScalarType.Float64, generator: new Generator(12));
            var closedForm = q.ScoreFromNoise(noise);
            Assert.IsNotNull(closedForm);
            Assert.IsFalse(closedForm.requires_grad);
            var parameters = q.parameters().ToList();
            Tensor byJacobian;
            foreach (var p in parameters) p.requires_grad = false;
            try { byJacobian = StoppedParameterLogProb.ScoreAtDraws(q, noise); }
            finally { foreach (var p in parameters) p.requires_grad = true; }
            AssertClose(byJacobian, closedForm, 1e-10, $"base {(learnableBase ? "diagonal" : "standard")}, {(fused ? "compiled pass" : "tensor operations")}");
        }
    }

    [TestMethod]
    public void StoppedParameterLogProbOfAPlanarFlowUsesTheClosedFormScore()
    {
        // The surrogate's path gradient ∂/∂z is the closed-form score; its value is the sampling pass's log q.
        var q = FlowFactory.Create("planar", 2, 5, seed: 6);
        q.to(ScalarType.Float64);
        var noise = torch.randn(6, 2, dtype: ScalarType.Float64, generator: new Generator(7));
        var (z, logQ) = q.SampleFromNoise(noise);
        var live = z.detach().requires_grad_();
        var surrogate = StoppedParameterLogProb.Compute(q, noise, live, logQ);
        var pathGradient = torch.autograd.grad(new[] { surrogate.sum() }, new[] { live })[0];
        AssertClose(q.ScoreFromNoise(noise)!, pathGradient, 1e-12, "path gradient");
        AssertClose(logQ.detach(), surrogate.detach(), 1e-12, "value");
    }

    [TestMethod]
    public void ObjectivesRefuseABadEstimatorOrAnEmptyBatchByName()
    {
        var q = FlowFactory.Create("planar", 2, 3, seed: 1);
        var target = TargetGallery.Create("ring");
        foreach (var objective in new VariationalObjective[] { new ElboObjective(), new ElboObjective(GradientEstimator.StickingTheLanding), new ImportanceWeightedElboObjective(4) })
            foreach (int batch in new[] { 0, -3 })
                Assert.AreEqual("batchSize", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => objective.Compute(q, target, batch, new Generator(1))).ParamName,
                    $"{objective.GetType().Name}, batch {batch}");
        Assert.AreEqual("estimator", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ElboObjective((GradientEstimator)42)).ParamName);
    }

    [TestMethod]
    public void ElboWithStickingTheLandingHasTheJacobianRoutesGradient()
    {
        // The one-pass route (score out of the planar pass, compiled or not) against the surrogate built by hand from
        // the autograd Jacobian route, on the same noise.
        var target = TargetGallery.Create("ring");
        foreach (bool fused in new[] { true, false })
        {
            Tensor[] Gradients(Func<FlowDistribution, Tensor> loss)
            {
                var planar = new PlanarFlow(2, 6, initScale: 0.6, generator: new Generator(31)) { DisableFusedKernel = !fused };
                var q = new FlowDistribution(new StandardNormal(2), planar);
                q.to(ScalarType.Float64);
                loss(q).backward();
                return q.parameters().Select(p => p.grad!.clone()).ToArray();
            }
            var oneRoute = Gradients(q => new ElboObjective(GradientEstimator.StickingTheLanding).Compute(q, target, 16, new Generator(32)).Loss);
            var byHand = Gradients(q =>
            {
                var noise = torch.randn(16, 2, dtype: ScalarType.Float64, generator: new Generator(32));
                var (z, logQ) = q.SampleFromNoise(noise);
                var parameters = q.parameters().ToList();
                Tensor score;
                foreach (var p in parameters) p.requires_grad = false;
                try { score = StoppedParameterLogProb.ScoreAtDraws(q, noise); }
                finally { foreach (var p in parameters) p.requires_grad = true; }
                var surrogate = logQ.detach() + (score * (z - z.detach())).sum(1);
                return -(target.Evaluate(z) - surrogate).mean();
            });
            for (int i = 0; i < byHand.Length; i++) AssertClose(byHand[i], oneRoute[i], 1e-10, $"parameter {i}, fused = {fused}");
        }
    }

    [TestMethod]
    public void StoppedParameterLogProbOfAFullRankGaussianKeepsTheSamplingValueAndTheExactPathGradient()
    {
        // Well conditioned: the path gradient ∂/∂z of the surrogate is ∇_z log q(z) = −Σ⁻¹(z − μ), here checked against
        // autograd through the Gaussian's own LogProb (triangular solve).
        var q = new FlowDistribution(new FullRankNormal(3, 0.7));
        q.to(ScalarType.Float64);
        var gaussian = (FullRankNormal)q.Base;
        using (torch.no_grad())
        {
            foreach (var (name, p) in q.named_parameters()) p.copy_(torch.randn(p.shape, dtype: ScalarType.Float64, generator: new torch.Generator(4)) * 0.3);
        }
        var noise = torch.randn(5, 3, dtype: ScalarType.Float64, generator: new torch.Generator(5));
        var (z, logQ) = q.SampleFromNoise(noise);
        var live = z.detach().requires_grad_();
        var surrogate = StoppedParameterLogProb.Compute(q, noise, live, logQ);
        var pathGradient = torch.autograd.grad(new[] { surrogate.sum() }, new[] { live })[0];
        Tensor expected;
        using (torch.no_grad())
        {
            var precision = torch.linalg.inv(gaussian.Covariance);
            expected = -(live.detach() - gaussian.Location).matmul(precision);
        }
        AssertClose(expected, pathGradient, 1e-9, "path gradient");
        AssertClose(logQ.detach(), surrogate.detach(), 1e-12, "value");

        // Ill conditioned: a mean of 1,000 and scales of 1e-14, so z − μ is lost to rounding. The value must still be the
        // sampling pass's log q (recovering ε from z would give log q's of ε ≈ 0 instead, d/2 · ε² nats off).
        using (torch.no_grad())
        {
            foreach (var (name, p) in q.named_parameters())
            {
                if (name.EndsWith("loc", StringComparison.Ordinal)) p.fill_(1_000.0);
                else if (name.Contains("Diagonal", StringComparison.OrdinalIgnoreCase) && !name.Contains("off", StringComparison.OrdinalIgnoreCase)) p.fill_(Math.Log(1e-14));
            }
        }
        var (zBad, logQBad) = q.SampleFromNoise(noise);
        var value = StoppedParameterLogProb.Compute(q, noise, zBad.detach().requires_grad_(), logQBad).detach();
        AssertClose(logQBad.detach(), value, 1e-9, "value with z − μ lost to rounding");
        Assert.IsTrue(value.isfinite().all().item<bool>(), "finite");
    }

    [TestMethod]
    public void DoublyReparameterizedEqualsStlForOneInnerSample()
    {
        var target = TargetGallery.Create("ring");
        var a = Gradients(FlowFactory.Create("planar", 2, 3, seed: 2), target, new ImportanceWeightedElboObjective(1, GradientEstimator.StickingTheLanding), 7);
        var b = Gradients(FlowFactory.Create("planar", 2, 3, seed: 2), target, new ImportanceWeightedElboObjective(1, GradientEstimator.DoublyReparameterized), 7);
        for (int i = 0; i < a.Length; i++) Assert.AreEqual(a[i], b[i], 1e-5);
    }

    [TestMethod]
    public void NonFiniteDrawsGetWeightZeroAndNeverReachTheGradient()
    {
        // log p̃ is NaN for z1 > 1 (sqrt of a negative number), finite elsewhere.
        var target = Target.FromDelegate("nan-right-half", 2, z => (1 - z[.., 0]).sqrt().log() - 0.5 * z.square().sum(1));
        foreach (var estimator in Enum.GetValues<GradientEstimator>())
            foreach (int m in new[] { 1, 4 })
            {
                var q = new FlowDistribution(new DiagonalNormal(2));
                var objective = new ImportanceWeightedElboObjective(m, estimator);
                var terms = objective.Compute(q, target, 128, new Generator(3));
                Assert.IsTrue(double.IsFinite(terms.Elbo.ToDouble()), $"{estimator}, M = {m}: ELBO {terms.Elbo.ToDouble()}");
                Assert.IsTrue(terms.NonFiniteSamples!.item<long>() > 0, "some draws fall in z1 > 1");
                terms.Loss.backward();
                foreach (var p in q.parameters())
                    Assert.IsTrue(p.grad!.isfinite().all().item<bool>(), $"{estimator}, M = {m}: non-finite gradient");
            }
        // Without dropping, the step is non-finite (the trainer skips it).
        var strict = new ImportanceWeightedElboObjective(1, dropNonFiniteSamples: false)
            .Compute(new FlowDistribution(new DiagonalNormal(2)), target, 128, new Generator(3));
        Assert.IsFalse(double.IsFinite(strict.Elbo.ToDouble()));
    }

    [TestMethod]
    public void RejectsBadSettings()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ImportanceWeightedElboObjective(0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ImportanceWeightedElboObjective(1, (GradientEstimator)42));
    }

    /// <summary>Σ over parameters of the variance of the gradient across independent batches of 64.</summary>
    private static double GradientVariance(FlowDistribution q, Target target, GradientEstimator estimator, int batches = 50)
    {
        var objective = new ImportanceWeightedElboObjective(1, estimator);
        var draws = Enumerable.Range(0, batches).Select(i => Gradients(q, target, objective, 100 + i)).ToArray();
        double total = 0;
        for (int k = 0; k < draws[0].Length; k++)
        {
            double mean = draws.Average(g => g[k]);
            total += draws.Sum(g => (g[k] - mean) * (g[k] - mean)) / (draws.Length - 1);
        }
        return total;
    }

    private static double[] Gradients(FlowDistribution q, Target target, VariationalObjective objective, int seed)
    {
        foreach (var p in q.parameters()) p.grad?.zero_();
        var terms = objective.Compute(q, target, 64, new Generator((ulong)seed));
        terms.Loss.backward();
        return q.parameters().SelectMany(p => p.grad!.to(ScalarType.Float64).data<double>().ToArray()).ToArray();
    }
}
