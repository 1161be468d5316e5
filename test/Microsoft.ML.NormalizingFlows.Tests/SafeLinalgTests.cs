using Microsoft.ML.NormalizingFlows.Tensors;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class SafeLinalgTests
{
    [TestMethod]
    public void ABadMatrixGetsANaNFactorWhileTheOthersAreExact()
    {
        var good = torch.tensor(new[,] { { 4.0, 2.0 }, { 2.0, 3.0 } }, ScalarType.Float64);
        var bad = torch.tensor(new[,] { { 1.0, 2.0 }, { 2.0, 1.0 } }, ScalarType.Float64); // eigenvalues 3 and −1
        var factors = SafeLinalg.Cholesky(torch.stack(new[] { good, bad, good }));
        Assert.IsTrue((factors[0] - torch.linalg.cholesky(good)).abs().max().item<double>() < 1e-15);
        Assert.IsTrue(factors[1].isnan().all().item<bool>());
        Assert.IsTrue(factors[2].isfinite().all().item<bool>());
        Assert.ThrowsExactly<ArgumentException>(() => SafeLinalg.Cholesky(torch.zeros(2, 3)));
    }

    [TestMethod]
    public void AGaussianProcessWhoseMatrixFailsAtSomeDrawsStillTrains()
    {
        // Reproduction: a GP-style log density with torch.linalg.cholesky threw on a draw whose matrix was not
        // positive definite and aborted the fit. Here the matrix [[1, r], [r, 1]] with r = z1 fails for |z1| ≥ 1.
        Tensor LogDensity(Tensor z, Func<Tensor, Tensor> cholesky)
        {
            var r = z[.., 0];
            var one = torch.ones_like(r);
            var matrix = torch.stack(new[] { torch.stack(new[] { one, r }, -1), torch.stack(new[] { r, one }, -1) }, -2);
            var l = cholesky(matrix);
            var logDet = l.diagonal(dim1: -2, dim2: -1).log().sum(-1);
            return -logDet - 0.5 * z.square().sum(1) * 4;
        }
        var unsafeTarget = Target.FromDelegate("gp-unsafe", 2, z => LogDensity(z, m => torch.linalg.cholesky(m)));
        var options = new TrainerOptions { Iterations = 200, BatchSize = 64, LearningRate = 0.02, Threads = 1, Objective = new ImportanceWeightedElboObjective(1) };
        Assert.ThrowsExactly<TargetException>(() => VariationalTrainer.Fit(new FlowDistribution(new DiagonalNormal(2, 1.0)), unsafeTarget, options));
        var safeTarget = Target.FromDelegate("gp-safe", 2, z => LogDensity(z, SafeLinalg.Cholesky));
        var q = new FlowDistribution(new DiagonalNormal(2, 1.0));
        var fit = VariationalTrainer.Fit(q, safeTarget, options);
        Assert.AreEqual(FitStatus.Completed, fit.Status);
        Assert.IsTrue(fit.NonFiniteSamples > 0, "the failed draws were dropped and counted");
        Assert.IsTrue(q.parameters().All(p => p.isfinite().all().item<bool>()));
    }
}
