using Microsoft.ML.NormalizingFlows.Modeling.Distributions;
using StudentT = Microsoft.ML.NormalizingFlows.Modeling.Distributions.StudentT;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MN = MathNet.Numerics.Distributions;
using MathNet.Numerics.LinearAlgebra;

namespace Microsoft.ML.NormalizingFlows.Tests.Modeling;

/// <summary>Every distribution's log density against MathNet.Numerics (or a closed form built on it) across parameter grids, in float64 and float32.</summary>
[TestClass]
public sealed class DistributionTests
{
    private static readonly double[] Scales = { 0.3, 1.0, 4.5 };
    private static readonly double[] Locations = { -2.0, 0.0, 1.7 };
    private static readonly double[] Points = { -3.1, -0.4, 0.0, 0.25, 1.0, 2.9, 12.0 };
    private static readonly double[] Positive = { 1e-3, 0.2, 1.0, 3.3, 40.0 };
    private static readonly double[] UnitInterval = { 1e-4, 0.05, 0.5, 0.93, 1 - 1e-4 };

    private static Tensor T(double v) => torch.tensor(v, ScalarType.Float64);

    /// <summary>Ours at x (batched over all points at once) against the reference, float64 (1e-9) and float32 (1e-4 relative).</summary>
    /// <remarks>Count distributions take their dtype from their (tensor) parameters, since counts are often integers: <paramref name="valueSetsDtype"/> false.</remarks>
    private static void Check(Distribution d, double[] xs, Func<double, double> reference, string what, bool valueSetsDtype = true)
    {
        var ours = d.LogProb(torch.tensor(xs, ScalarType.Float64)).data<double>().ToArray();
        var ours32 = d.LogProb(torch.tensor(xs, ScalarType.Float64).to(ScalarType.Float32));
        if (valueSetsDtype) Assert.AreEqual(ScalarType.Float32, ours32.dtype, $"{what}: the value's dtype decides the result's");
        var single = ours32.to(ScalarType.Float64).data<double>().ToArray();
        for (int i = 0; i < xs.Length; i++)
        {
            double expected = reference(xs[i]);
            if (double.IsNegativeInfinity(expected) || expected < -1e300)
            {
                Assert.IsTrue(double.IsNegativeInfinity(ours[i]), $"{what} at {xs[i]}: expected −∞, got {ours[i]}");
                continue;
            }
            Assert.AreEqual(expected, ours[i], 1e-9 * Math.Max(1, Math.Abs(expected)), $"{what} at x = {xs[i]}");
            if (double.IsFinite(single[i]) || Math.Abs(expected) < 1e30)
                Assert.AreEqual(expected, single[i], 1e-4 * Math.Max(1, Math.Abs(expected)), $"{what} (float32) at x = {xs[i]}");
        }
    }

    [TestMethod]
    public void ContinuousLocationScaleFamilies()
    {
        foreach (var mu in Locations)
            foreach (var s in Scales)
            {
                Check(new Normal(mu, s), Points, x => MN.Normal.PDFLn(mu, s, x), $"Normal({mu}, {s})");
                Check(new Cauchy(mu, s), Points, x => MN.Cauchy.PDFLn(mu, s, x), $"Cauchy({mu}, {s})");
                foreach (var nu in new[] { 1.0, 3.0, 30.0 })
                    Check(new StudentT(nu, mu, s), Points, x => MN.StudentT.PDFLn(mu, s, nu, x), $"StudentT({nu}, {mu}, {s})");
                Check(new LogNormal(mu, s), Positive, x => MN.LogNormal.PDFLn(mu, s, x), $"LogNormal({mu}, {s})");
            }
        foreach (var s in Scales)
        {
            Check(new HalfNormal(s), Points, x => x < 0 ? double.NegativeInfinity : Math.Log(2) + MN.Normal.PDFLn(0, s, x), $"HalfNormal({s})");
            Check(new HalfCauchy(s), Points, x => x < 0 ? double.NegativeInfinity : Math.Log(2) + MN.Cauchy.PDFLn(0, s, x), $"HalfCauchy({s})");
            Check(new Exponential(s), Points, x => x < 0 ? double.NegativeInfinity : MN.Exponential.PDFLn(s, x), $"Exponential({s})");
        }
        Check(new Uniform(-1, 2.5), Points, x => x < -1 || x > 2.5 ? double.NegativeInfinity : -Math.Log(3.5), "Uniform(-1, 2.5)");
    }

    [TestMethod]
    public void GammaInverseGammaAndBeta()
    {
        foreach (var a in new[] { 0.5, 1.0, 2.5, 17.0 })
            foreach (var b in new[] { 0.1, 1.0, 6.0 })
            {
                Check(new Gamma(a, b), Positive, x => MN.Gamma.PDFLn(a, b, x), $"Gamma({a}, {b})");
                // MathNet's InverseGamma.PDFLn underflows to −∞ far in the left tail (it takes the log of the density); the
                // closed form with MathNet's log Γ does not.
                Check(new InverseGamma(a, b), Positive, x => a * Math.Log(b) - MathNet.Numerics.SpecialFunctions.GammaLn(a) - (a + 1) * Math.Log(x) - b / x, $"InverseGamma({a}, {b})");
                Assert.AreEqual(MN.InverseGamma.PDFLn(a, b, 3.3), new InverseGamma(a, b).LogProb(torch.tensor(3.3, ScalarType.Float64)).item<double>(), 1e-9);
                Check(new Beta(a, b), UnitInterval, x => MN.Beta.PDFLn(a, b, x), $"Beta({a}, {b})");
            }
        Check(new Gamma(2, 1), new[] { -1.0, 0.0 }, _ => double.NegativeInfinity, "Gamma outside x > 0");
        Check(new Beta(2, 3), new[] { -0.1, 0.0, 1.0, 1.5 }, _ => double.NegativeInfinity, "Beta outside (0, 1)");
    }

    [TestMethod]
    public void CountDistributions()
    {
        var counts = new double[] { 0, 1, 2, 5, 17 };
        foreach (var logit in new[] { -3.0, -0.2, 0.0, 1.4, 6.0 })
        {
            double p = 1 / (1 + Math.Exp(-logit));
            Check(new BernoulliLogit(T(logit)), new[] { 0.0, 1.0, 0.5, 2.0 }, y => y is 0 or 1 ? MN.Bernoulli.PMFLn(p, (int)y) : double.NegativeInfinity, $"BernoulliLogit({logit})", valueSetsDtype: false);
            foreach (var n in new[] { 1, 7, 20 })
                Check(new BinomialLogit(T(n), T(logit)), counts, k => k <= n ? MN.Binomial.PMFLn(p, n, (int)k) : double.NegativeInfinity, $"BinomialLogit({n}, {logit})", valueSetsDtype: false);
            Check(new PoissonLog(T(logit)), counts.Append(2.5).ToArray(), k => k % 1 == 0 ? MN.Poisson.PMFLn(Math.Exp(logit), (int)k) : double.NegativeInfinity, $"PoissonLog({logit})", valueSetsDtype: false);
        }
        foreach (var mean in new[] { 0.3, 4.0, 50.0 })
            foreach (var phi in new[] { 0.5, 3.0, 200.0 })
                Check(new NegativeBinomial(mean, phi), counts, k => MN.NegativeBinomial.PMFLn(phi, phi / (mean + phi), (int)k), $"NegativeBinomial({mean}, {phi})");
        // Integer count tensors work as values too.
        var fromInts = new PoissonLog(T(0.7)).LogProb(torch.tensor(new long[] { 0, 3 })).to(ScalarType.Float64).data<double>().ToArray();
        Assert.AreEqual(MN.Poisson.PMFLn(Math.Exp(0.7), 3), fromInts[1], 1e-5);
    }

    [TestMethod]
    public void CategoricalFromLogitsIsBatched()
    {
        var logits = torch.tensor(new[,] { { 0.1, -2.0, 3.0 }, { 1.0, 1.0, 1.0 } }, ScalarType.Float64);
        var lp = new Categorical(logits).LogProb(torch.tensor(new long[] { 2, 0 })).data<double>().ToArray();
        double[] Softmax(double[] l) { var e = l.Select(Math.Exp).ToArray(); return e.Select(v => v / e.Sum()).ToArray(); }
        Assert.AreEqual(MN.Categorical.PMFLn(Softmax(new[] { 0.1, -2.0, 3.0 }), 2), lp[0], 1e-12);
        Assert.AreEqual(Math.Log(1.0 / 3), lp[1], 1e-12);
        Assert.IsTrue(double.IsNegativeInfinity(new Categorical(logits[0]).LogProb(torch.tensor(new long[] { 3 })).data<double>()[0]), "class 3 of 3 is out of range");
        Assert.ThrowsExactly<ArgumentException>(() => new Categorical(logits).LogProb(torch.tensor(new[] { 1.0, 0.0 })));
    }

    [TestMethod]
    public void DirichletOnTheSimplex()
    {
        foreach (var alpha in new[] { new[] { 1.0, 1.0, 1.0 }, new[] { 0.5, 2.0, 7.0 }, new[] { 30.0, 0.2, 1.5, 4.0 } })
        {
            var x = Enumerable.Range(1, alpha.Length).Select(i => (double)i).ToArray();
            x = x.Select(v => v / x.Sum()).ToArray();
            double ours = new Dirichlet(torch.tensor(alpha, ScalarType.Float64)).LogProb(torch.tensor(x, ScalarType.Float64)).item<double>();
            Assert.AreEqual(new MN.Dirichlet(alpha).DensityLn(x), ours, 1e-9, $"Dirichlet({string.Join(", ", alpha)})");
        }
        var off = new Dirichlet(torch.tensor(new[] { 1.0, 2.0 }, ScalarType.Float64)).LogProb(torch.tensor(new[] { 0.7, 0.7 }, ScalarType.Float64));
        Assert.IsTrue(double.IsNegativeInfinity(off.item<double>()), "a point off the simplex");
    }

    [TestMethod]
    public void MultivariateNormalFromACholeskyFactorMatchesTheClosedForm()
    {
        var covariance = Matrix<double>.Build.DenseOfArray(new[,] { { 2.0, 0.6, -0.3 }, { 0.6, 1.0, 0.2 }, { -0.3, 0.2, 0.5 } });
        var l = covariance.Cholesky().Factor;
        var mu = Vector<double>.Build.DenseOfArray(new[] { 0.5, -1.0, 2.0 });
        var points = new[,] { { 0.0, 0.0, 0.0 }, { 1.5, -2.0, 2.2 }, { -3.0, 1.0, 0.4 } };
        var ours = new MultivariateNormal(torch.tensor(mu.ToArray(), ScalarType.Float64), torch.tensor(l.ToArray(), ScalarType.Float64))
            .LogProb(torch.tensor(points, ScalarType.Float64)).data<double>().ToArray();
        for (int i = 0; i < 3; i++)
        {
            var centered = Vector<double>.Build.DenseOfArray(new[] { points[i, 0], points[i, 1], points[i, 2] }) - mu;
            double expected = -0.5 * centered * covariance.Inverse() * centered - 0.5 * Math.Log(covariance.Determinant()) - 1.5 * Math.Log(2 * Math.PI);
            Assert.AreEqual(expected, ours[i], 1e-10, $"point {i}");
        }
        Assert.ThrowsExactly<ArgumentException>(() => new MultivariateNormal(torch.zeros(2, dtype: ScalarType.Float64), torch.eye(3, dtype: ScalarType.Float64)));
    }

    [TestMethod]
    public void LkjCholeskyIsNormalizedForTwoByTwo()
    {
        // For d = 2, L = [[1, 0], [r, √(1 − r²)]] and p(L) is a density of r on (−1, 1): it must integrate to 1.
        foreach (var eta in new[] { 0.5, 1.0, 2.0, 7.5 })
        {
            var lkj = new LkjCholesky(2, eta);
            int n = 200_000;
            var r = torch.linspace(-1 + 1.0 / n, 1 - 1.0 / n, n, dtype: ScalarType.Float64);
            var zeros = torch.zeros_like(r);
            var l = torch.stack(new[] { torch.stack(new[] { torch.ones_like(r), zeros }, -1), torch.stack(new[] { r, (1 - r * r).sqrt() }, -1) }, -2);
            double integral = lkj.LogProb(l).exp().sum().item<double>() * (2.0 / n);
            Assert.AreEqual(1.0, integral, eta < 1 ? 2e-2 : 1e-4, $"η = {eta}");
        }
        // log c_d(1) for d = 3 is log(π²/2) (the volume of 3×3 correlation matrices).
        Assert.AreEqual(Math.Log(Math.PI * Math.PI / 2), new LkjCholesky(3, 1.0).LogNormalizer, 1e-12);
    }

    [TestMethod]
    public void LogDensitiesAreDifferentiableInTheirParameters()
    {
        // d/dσ log Normal(x | μ, σ) = −1/σ + (x − μ)²/σ³, batched over several σ.
        var sigma = torch.tensor(new[] { 0.5, 1.0, 2.0 }, ScalarType.Float64).requires_grad_(true);
        var x = torch.tensor(new[] { 1.3, -0.2, 4.0 }, ScalarType.Float64);
        new Normal(torch.tensor(0.5, ScalarType.Float64), sigma).LogProb(x).sum().backward();
        var grad = sigma.grad!.data<double>().ToArray();
        double[] s = { 0.5, 1.0, 2.0 }, xs = { 1.3, -0.2, 4.0 };
        for (int i = 0; i < 3; i++) Assert.AreEqual(-1 / s[i] + Math.Pow(xs[i] - 0.5, 2) / Math.Pow(s[i], 3), grad[i], 1e-12);
        // Numeric parameters are checked where they are given (a negative scale would make every log density NaN).
        Assert.AreEqual("scale", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Normal(0, -1)).ParamName);
        Assert.AreEqual("loc", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Cauchy(double.NaN, 1)).ParamName);
        Assert.AreEqual("rate", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Gamma(2, 0)).ParamName);
        Assert.AreEqual("degreesOfFreedom", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new StudentT(-3)).ParamName);
        Assert.AreEqual("concentration", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new NegativeBinomial(1, double.PositiveInfinity)).ParamName);
        // Parameters must be floating point.
        Assert.ThrowsExactly<ArgumentException>(() => new Normal(torch.tensor(new long[] { 0 }), torch.ones(1)));
    }
}
