namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class CorrelatedGaussianTargetTests
{
    private static Tensor CovarianceTensor(CorrelatedGaussianTarget target) => torch.tensor(target.Covariance(), dtype: ScalarType.Float64);

    [TestMethod]
    public void CovarianceIsDenseSymmetricWithTheRequestedConditionNumber()
    {
        var target = new CorrelatedGaussianTarget(dimension: 50, conditionNumber: 100, seed: 3);
        var sigma = CovarianceTensor(target);
        Assert.AreEqual(0.0, (sigma - sigma.t()).abs().max().item<double>(), 1e-12);
        var eigenvalues = torch.linalg.eigvalsh(sigma);
        Assert.AreEqual(100.0, (eigenvalues.max() / eigenvalues.min()).item<double>(), 1e-6);
        Assert.AreEqual(0.0, eigenvalues.log().mean().item<double>(), 1e-9, "geometric mean of the eigenvalues is 1");
        // Dense: the off-diagonal carries a sizeable share of the covariance (a rotation, not an axis-aligned one).
        double offDiagonal = (sigma - torch.diag(sigma.diagonal())).abs().max().item<double>();
        Assert.IsTrue(offDiagonal > 0.3, $"largest |off-diagonal| = {offDiagonal}");
    }

    [TestMethod]
    public void SameSeedSameTargetOtherSeedOtherTarget()
    {
        var a = new CorrelatedGaussianTarget(10, 20, seed: 1);
        var b = new CorrelatedGaussianTarget(10, 20, seed: 1);
        var c = new CorrelatedGaussianTarget(10, 20, seed: 2);
        CollectionAssert.AreEqual(a.Covariance(), b.Covariance());
        CollectionAssert.AreEqual(a.Mean.ToArray(), b.Mean.ToArray());
        CollectionAssert.AreNotEqual(a.Mean.ToArray(), c.Mean.ToArray());
    }

    [TestMethod]
    public void FullRankNormalSetToTheTargetHasZeroKl()
    {
        // q = N(m, LLᵀ) with L = chol(Σ) is the target itself, so log p̃ − log q = −log Z at every draw:
        // the ELBO is log Z exactly (zero spread) and the reported KL is 0.
        var target = new CorrelatedGaussianTarget(dimension: 20, conditionNumber: 100, seed: 5);
        var q = new FlowDistribution(new FullRankNormal(target.Dimension));
        q.to(ScalarType.Float64);
        var l = torch.linalg.cholesky(CovarianceTensor(target));
        using (torch.no_grad())
        {
            foreach (var (name, p) in q.named_parameters())
            {
                if (name.EndsWith("loc")) p.copy_(torch.tensor(target.Mean.ToArray(), dtype: ScalarType.Float64));
                else if (name.EndsWith("logDiagonal")) p.copy_(l.diagonal().log());
                else if (name.EndsWith("offDiagonal")) p.copy_(l.tril(-1));
                else Assert.Fail($"unexpected parameter {name}");
            }
        }
        var estimate = Evaluation.EstimateElbo(q, target, 2000);
        Assert.AreEqual(0.0, estimate.Kl!.Value, 1e-9);
        Assert.AreEqual(0.0, estimate.StandardError, 1e-6);  // the se formula subtracts two ~n·(log Z)² sums
        Assert.AreEqual(10 * Math.Log(2 * Math.PI) + 0.5 * target.Eigenvalues.Sum(Math.Log), target.LogNormalizer!.Value, 1e-12);
    }

    [TestMethod]
    public void GalleryTargetIsFiftyDimensionalWithConditionNumberHundred()
    {
        var target = (CorrelatedGaussianTarget)TargetGallery.Create("correlated-gaussian");
        Assert.AreEqual((50, 100.0, 0L), (target.Dimension, target.ConditionNumber, target.Seed));
    }

    [TestMethod]
    public void BadArgumentsNameTheArgument()
    {
        Assert.AreEqual("dimension", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new CorrelatedGaussianTarget(1)).ParamName);
        Assert.AreEqual("conditionNumber", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new CorrelatedGaussianTarget(5, 0.5)).ParamName);
        Assert.AreEqual("conditionNumber", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new CorrelatedGaussianTarget(5, double.NaN)).ParamName);
        Assert.AreEqual("conditionNumber", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new CorrelatedGaussianTarget(5, double.PositiveInfinity)).ParamName);
    }

    [TestMethod]
    public void LogDensityFollowsThePointsPrecisionWhicheverCameFirst()
    {
        // The target keeps its mean and precision converted to the last dtype it saw; switching back and forth
        // must give each precision's own value, never a stale or mixed-dtype one.
        var target = new CorrelatedGaussianTarget(8, 10, seed: 4);
        var z64 = torch.randn(5, 8, dtype: ScalarType.Float64, generator: new Generator(1));
        var first = target.Evaluate(z64).clone();
        var inFloat32 = target.Evaluate(z64.to(ScalarType.Float32));
        var again = target.Evaluate(z64);
        Assert.AreEqual(ScalarType.Float32, inFloat32.dtype);
        Assert.AreEqual(ScalarType.Float64, again.dtype);
        Assert.AreEqual(0.0, (first - again).abs().max().item<double>());
        Assert.AreEqual(0.0, (first - inFloat32.to(ScalarType.Float64)).abs().max().item<double>(), 1e-4);
        var centered = z64 - torch.tensor(target.Mean.ToArray(), dtype: ScalarType.Float64);
        var expected = -0.5 * (centered.matmul(torch.linalg.inv(CovarianceTensor(target))) * centered).sum(1);
        Assert.AreEqual(0.0, (first - expected).abs().max().item<double>(), 1e-9);
    }
}
