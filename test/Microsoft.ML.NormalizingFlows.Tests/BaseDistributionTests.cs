using TorchSharp.Modules;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>The learnable bases: Student-t (heavy tails, learnable ν) and the diagonal normal.</summary>
[TestClass]
public sealed class BaseDistributionTests
{
    private static Parameter LogDof(StudentT t) => t.parameters().Single();

    private static void SetDof(StudentT t, params double[] dof)
    {
        using var noGrad = torch.no_grad();
        LogDof(t).copy_(torch.tensor(dof.Select(v => Math.Log(v)).ToArray()).to(LogDof(t).dtype));
    }

    /// <summary>log Γ((ν+1)/2) − log Γ(ν/2) for ν = 1, 3, 5, from Γ(1) = 1, Γ(½) = √π, Γ(2) = 1, Γ(3/2) = √π/2, Γ(3) = 2, Γ(5/2) = 3√π/4.</summary>
    private static double LogGammaRatio(double nu) => nu switch
    {
        1 => -0.5 * Math.Log(Math.PI),
        3 => -Math.Log(Math.Sqrt(Math.PI) / 2),
        5 => Math.Log(2) - Math.Log(3 * Math.Sqrt(Math.PI) / 4),
        _ => throw new ArgumentOutOfRangeException(nameof(nu)),
    };

    private static double StudentTLogDensity(double x, double nu) =>
        LogGammaRatio(nu) - 0.5 * Math.Log(nu * Math.PI) - (nu + 1) / 2 * Math.Log(1 + x * x / nu);

    [TestMethod]
    public void StudentTLogProbEqualsTheClosedFormPerCoordinate()
    {
        double[] nus = { 1, 3, 5 };
        var t = new StudentT(3);
        t.to(ScalarType.Float64);
        SetDof(t, nus);
        var z = torch.randn(40, 3, dtype: ScalarType.Float64, generator: new Generator(1)) * 4;
        var actual = t.LogProb(z).data<double>().ToArray();
        var zs = z.data<double>().ToArray();
        for (int n = 0; n < 40; n++)
        {
            double expected = Enumerable.Range(0, 3).Sum(i => StudentTLogDensity(zs[n * 3 + i], nus[i]));
            Assert.AreEqual(expected, actual[n], 1e-12, $"row {n}");
        }
        // Cauchy (ν = 1) at 0: −log π.
        var cauchy = new StudentT(1, 1.0, learnable: false);
        cauchy.to(ScalarType.Float64);
        Assert.AreEqual(-Math.Log(Math.PI), cauchy.LogProb(torch.zeros(1, 1, dtype: ScalarType.Float64)).item<double>(), 1e-14);
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void StudentTSamplesHaveTheRightMomentsAndQuantile(bool learnable)
    {
        // ν = 5: mean 0, variance ν/(ν − 2) = 5/3, P(|t| > 2.015048) = 0.1. 2·10⁵ draws in each of 2 coordinates:
        // the standard errors are ≈ 0.002 (mean), ≈ 0.0075 (variance; the fourth moment is 25), ≈ 0.0005 (tail).
        var t = new StudentT(2, 5.0, learnable);
        t.to(ScalarType.Float64);
        Tensor z;
        using (torch.no_grad()) z = t.Sample(200_000, new Generator(11)).Sample;
        Assert.AreEqual(0.0, z.mean().ToDouble(), 0.01, "mean");
        Assert.AreEqual(5.0 / 3, z.square().mean().ToDouble(), 0.04, "variance");
        Assert.AreEqual(0.1, z.abs().gt(2.015048).to(ScalarType.Float64).mean().ToDouble(), 0.003, "two-sided 10% tail");
        // Seeded draws repeat.
        using (torch.no_grad())
            AssertClose(t.Sample(10, new Generator(3)).Sample, t.Sample(10, new Generator(3)).Sample, 0, "seeded draws");
    }

    [TestMethod]
    public void StudentTSampleLogProbEqualsLogProbAtTheSample()
    {
        var t = new StudentT(4);
        t.to(ScalarType.Float64);
        SetDof(t, 1, 2.5, 7, 30);
        var (z, logQ) = t.Sample(500, new Generator(2));
        AssertClose(t.LogProb(z), logQ, 1e-12, "log q of the draws");
    }

    /// <summary>
    /// ν is reparameterized: ∂E[t²]/∂log ν by the sampling path must match the exact derivative of
    /// ν/(ν − 2), which is −2ν/(ν − 2)² (= −10/9 at ν = 5). A sampler without the implicit gamma
    /// gradient gives 0 or the wrong sign here.
    /// </summary>
    [TestMethod]
    public void LearnableDegreesOfFreedomGetTheExactPathwiseGradient()
    {
        var t = new StudentT(2, 5.0);
        t.to(ScalarType.Float64);
        var (z, _) = t.Sample(200_000, new Generator(5));
        z.square().mean().backward();
        var grad = LogDof(t).grad!.data<double>().ToArray();
        foreach (double g in grad) Assert.AreEqual(-10.0 / 9, g * 2, 0.1, "per-coordinate gradient of the mean over both coordinates");
    }

    [TestMethod]
    public void LearnableDegreesOfFreedomStayPositiveForAnyParameterValue()
    {
        // ν = exp(free parameter): documented as ν > 0 for every value the optimizer can reach.
        var t = new StudentT(3);
        using (torch.no_grad()) LogDof(t).copy_(torch.tensor(new float[] { -40, 0, 40 }));
        var nu = t.DegreesOfFreedom;
        Assert.IsTrue(nu.gt(0).all().item<bool>() && nu.isfinite().all().item<bool>(), nu.ToString(TorchSharp.TensorStringStyle.Julia));
        var (z, logQ) = t.Sample(256, new Generator(1));
        AssertFinite(z, "draws");
        AssertFinite(logQ, "log q of the draws");
        Assert.AreEqual("degreesOfFreedom", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new StudentT(2, 0)).ParamName);
        Assert.AreEqual("degreesOfFreedom", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new StudentT(2, double.PositiveInfinity)).ParamName);
        // Fixed ν: no parameters to learn.
        Assert.AreEqual(0, new StudentT(2, 4, learnable: false).parameters().Count());
    }

    [TestMethod]
    public void StudentTLogProbIsAccurateInFloat32ForHugeDegreesOfFreedom()
    {
        // log Γ((ν+1)/2) − log Γ(ν/2) cancels catastrophically in float32 for large ν: float32 must still agree
        // with float64, and at ν = 10⁹ the density is the standard normal's (the difference is O(z⁴/ν)).
        var z = torch.randn(100, 2, generator: new Generator(4)) * 2;
        foreach (double nu in new[] { 1e3, 1e6, 1e9 })
        {
            var t32 = new StudentT(2, nu);
            var t64 = new StudentT(2, nu);
            t64.to(ScalarType.Float64);
            AssertClose(t64.LogProb(z.to(ScalarType.Float64)), t32.LogProb(z), 1e-4, $"float32 vs float64, ν = {nu:g}");
        }
        AssertClose(new StandardNormal(2).LogProb(z), new StudentT(2, 1e9).LogProb(z), 1e-4, "ν = 1e9 vs N(0, 1)");
    }

    [TestMethod]
    public void DiagonalNormalBaseIsLearnable()
    {
        // Maximum likelihood on data ~ N((3, −1), diag(0.5², 2²)) recovers the location and scale.
        var q = new DiagonalNormal(2);
        Assert.AreEqual(2, q.parameters().Count(p => p.requires_grad));
        var data = torch.randn(2000, 2, generator: new Generator(7)) * torch.tensor(new float[] { 0.5f, 2 }) + torch.tensor(new float[] { 3, -1 });
        var optimizer = torch.optim.Adam(q.parameters(), 0.05);
        for (int step = 0; step < 400; step++)
        {
            optimizer.zero_grad();
            var loss = -q.LogProb(data).mean();
            loss.backward();
            optimizer.step();
        }
        AssertClose(data.mean(new long[] { 0 }), q.Location.detach(), 0.02, "location");
        AssertClose(data.std(0, unbiased: false), q.Scale.detach(), 0.02, "scale");
        var (z, logQ) = q.Sample(100, new Generator(1));
        AssertClose(q.LogProb(z), logQ, 1e-4, "log q of the draws");
    }
}
