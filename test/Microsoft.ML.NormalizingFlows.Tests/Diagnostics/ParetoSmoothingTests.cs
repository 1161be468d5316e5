using Microsoft.ML.NormalizingFlows.Diagnostics;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Diagnostics;

[TestClass]
public sealed class ParetoSmoothingTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    [DataRow(0.2)]
    [DataRow(0.5)]
    [DataRow(0.8)]
    [DataRow(1.2)]
    public void ZhangStephensRecoversTheShapeOfGeneralizedParetoDraws(double k)
    {
        var draws = GeneralizedPareto.Sample(10_000, k, 1.0, new Random(42));
        var (kHat, sigmaHat) = GeneralizedPareto.Fit(draws);
        // The same draws used as importance ratios: PSIS fits only the M = 300 largest, so its k̂ is noisier.
        var psis = ParetoSmoothing.Smooth(draws.Select(x => Math.Log(x)).ToArray());
        TestContext.WriteLine($"k = {k}: Zhang–Stephens on all 10,000 draws k̂ = {kHat:F3} (σ̂ = {sigmaHat:F3}); PSIS tail (M = {psis.TailLength}) k̂ = {psis.ParetoK:F3}");
        Assert.AreEqual(k, kHat, 0.1, "k̂ of the full-sample fit");
        Assert.AreEqual(k, psis.ParetoK, 0.25, "k̂ of the PSIS tail fit");
    }

    [TestMethod]
    public void ThresholdIsSampleSizeAware()
    {
        Assert.AreEqual(1 - 1 / Math.Log10(1000), ParetoSmoothing.KThreshold(1000), 1e-12);
        Assert.AreEqual(0.7, ParetoSmoothing.KThreshold(10_000), 1e-12);
        Assert.AreEqual(0.7, ParetoSmoothing.KThreshold(1_000_000), 1e-12);
        Assert.AreEqual(300, ParetoSmoothing.TailLength(10_000));
        Assert.AreEqual(20, ParetoSmoothing.TailLength(100));
    }

    [TestMethod]
    public void QEqualToPGivesSmallKAndFullEffectiveSampleSize()
    {
        // q is the library's mean-field normal at its initialization N(0, I) (float32); p is N(0, I)
        // written independently: the ratios are constant up to rounding.
        var q = new FlowDistribution(new DiagonalNormal(2));
        var p = Target.FromDelegate("standard-normal", 2, z => z.square().sum(1).mul(-0.5) - Math.Log(2 * Math.PI));
        var sample = ImportanceSample.Draw(q, p, 10_000, seed: 7);
        var psis = sample.Psis;
        TestContext.WriteLine($"q = p: k̂ = {psis.ParetoK:F3}, ESS = {psis.EffectiveSampleSize:F1} of 10,000");
        // Constant ratios have no tail at all: k̂ = −∞ by definition (nothing to smooth).
        Assert.IsTrue(psis.ParetoK < 0.5, $"k̂ = {psis.ParetoK}");
        Assert.IsTrue(psis.EffectiveSampleSize > 9_900, $"ESS = {psis.EffectiveSampleSize}");
        Assert.AreEqual("Reliable", psis.IsReliable ? "Reliable" : "Not reliable");
    }

    [TestMethod]
    public void QSlightlyNarrowerThanPGivesKBelowHalf()
    {
        // q = N(0, 0.9²), p = N(0, 1): the ratios' tail has shape k = 1 − 0.9² = 0.19.
        var random = new Random(8);
        var logRatios = new double[10_000];
        for (int s = 0; s < logRatios.Length; s++)
        {
            double z = 0.9 * Normal(random);
            logRatios[s] = LogNormal(z, 1) - LogNormal(z, 0.9);
        }
        var psis = ParetoSmoothing.Smooth(logRatios);
        TestContext.WriteLine($"q = N(0, 0.81), p = N(0, 1): k̂ = {psis.ParetoK:F3} (tail shape 0.19), ESS = {psis.EffectiveSampleSize:F0}");
        Assert.IsTrue(psis.ParetoK < 0.5, $"k̂ = {psis.ParetoK}");
        Assert.IsTrue(psis.IsReliable);
    }

    [TestMethod]
    public void QWiderThanPHasBoundedRatiosAndNegativeK()
    {
        var random = new Random(3);
        var logRatios = new double[10_000];
        for (int s = 0; s < logRatios.Length; s++)
        {
            double z = 2 * Normal(random);                              // q = N(0, 2²)
            logRatios[s] = -0.5 * z * z - (-0.5 * z * z / 4 - Math.Log(2)); // p = N(0, 1), constants dropped
        }
        var psis = ParetoSmoothing.Smooth(logRatios);
        TestContext.WriteLine($"q = N(0, 4), p = N(0, 1): k̂ = {psis.ParetoK:F3}");
        Assert.IsTrue(psis.ParetoK < 0, $"k̂ = {psis.ParetoK}");
    }

    [TestMethod]
    public void NormalFittedByReverseKlToStudentT3GivesLargeK()
    {
        double sigma = ReverseKlNormalScaleForStudentT(3);
        var random = new Random(11);
        var logRatios = new double[10_000];
        for (int s = 0; s < logRatios.Length; s++)
        {
            double z = sigma * Normal(random);
            logRatios[s] = LogStudentT(z, 3) - LogNormal(z, sigma);
        }
        var psis = ParetoSmoothing.Smooth(logRatios);
        TestContext.WriteLine($"reverse-KL normal for t3: σ = {sigma:F4}; k̂ = {psis.ParetoK:F3}, ESS = {psis.EffectiveSampleSize:F0}, threshold = {psis.KThreshold}");
        Assert.IsTrue(sigma > 1 && sigma < Math.Sqrt(3), $"σ = {sigma} (t3 has standard deviation √3)");
        Assert.IsTrue(psis.ParetoK > 0.7, $"k̂ = {psis.ParetoK}");
        Assert.IsFalse(psis.IsReliable);
    }

    [TestMethod]
    public void NonFiniteRatiosGetZeroWeightAndAreCounted()
    {
        var random = new Random(5);
        var logRatios = Enumerable.Range(0, 1000).Select(_ => 0.1 * Normal(random)).ToArray();
        logRatios[3] = double.NaN;
        logRatios[10] = double.PositiveInfinity;
        logRatios[20] = double.NegativeInfinity;
        var psis = ParetoSmoothing.Smooth(logRatios);
        Assert.AreEqual(3, psis.NonFiniteRatios);
        Assert.AreEqual(0, psis.Weights[3]);
        Assert.AreEqual(0, psis.Weights[10]);
        Assert.AreEqual(0, psis.Weights[20]);
        Assert.AreEqual(1, psis.Weights.Sum(), 1e-12);
        Assert.IsTrue(psis.Weights.All(double.IsFinite));
    }

    [TestMethod]
    public void ExpectationWithUniformWeightsIsTheMeanWithItsStandardError()
    {
        var values = new double[] { 1, 2, 3, 4 };
        var estimate = ImportanceWeights.Expectation(new double[] { 1, 1, 1, 1 }, values);
        Assert.AreEqual(2.5, estimate.Mean, 1e-12);
        // √(Σ (1/4)² (h − 2.5)²) = √(5/16)/... = √(5)/4 · ... computed directly:
        Assert.AreEqual(Math.Sqrt(5.0 / 16), estimate.StandardError, 1e-12);
        Assert.AreEqual(4, ImportanceWeights.EffectiveSampleSize(new double[] { 0.25, 0.25, 0.25, 0.25 }), 1e-12);
        Assert.AreEqual(1, ImportanceWeights.EffectiveSampleSize(new double[] { 0, 1, 0 }), 1e-12);
        Assert.ThrowsExactly<ArgumentException>(() => ImportanceWeights.Expectation(new double[] { 1 }, values));
    }

    [TestMethod]
    public void ResamplingFollowsTheWeights()
    {
        var weights = new double[] { 0, 0.75, 0, 0.25 };
        var picks = ImportanceWeights.Resample(weights, 20_000, new Random(1));
        Assert.IsFalse(picks.Any(i => weights[i] == 0));
        Assert.AreEqual(0.75, picks.Count(i => i == 1) / 20_000.0, 0.02);
    }

    [TestMethod]
    public void FitRejectsBadInput()
    {
        Assert.ThrowsExactly<ArgumentException>(() => GeneralizedPareto.Fit(new double[] { 1 }));
        Assert.ThrowsExactly<ArgumentException>(() => GeneralizedPareto.Fit(new double[] { 1, -1, 2 }));
        Assert.ThrowsExactly<ArgumentException>(() => GeneralizedPareto.Fit(new double[] { 2, 2, 2 }));
        Assert.ThrowsExactly<ArgumentException>(() => ParetoSmoothing.Smooth(new double[] { 1 }));
    }

    internal static double Normal(Random random)
    {
        double u1 = 1 - random.NextDouble(), u2 = random.NextDouble();
        return Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2);
    }

    internal static double LogNormal(double z, double sigma) => -0.5 * z * z / (sigma * sigma) - Math.Log(sigma) - 0.5 * Math.Log(2 * Math.PI);

    internal static double LogStudentT(double z, double nu) =>
        LogGammaHalfIntegers(nu + 1) - LogGammaHalfIntegers(nu) - 0.5 * Math.Log(nu * Math.PI) - (nu + 1) / 2 * Math.Log(1 + z * z / nu);

    /// <summary>log Γ(n/2) for integer n ≥ 1.</summary>
    private static double LogGammaHalfIntegers(double n)
    {
        double value = n % 2 == 0 ? 0 : 0.5 * Math.Log(Math.PI);
        for (double x = n % 2 == 0 ? 1 : 0.5; x < n / 2 - 1e-9; x += 1) value += Math.Log(x);
        return value;
    }

    /// <summary>argmin_σ KL(N(0, σ²) ‖ t_ν) by golden-section search with E_q by quadrature.</summary>
    internal static double ReverseKlNormalScaleForStudentT(double nu)
    {
        double Kl(double sigma)
        {
            double sum = 0, h = 0.005;
            for (double u = -10; u <= 10; u += h)
            {
                double density = Math.Exp(-0.5 * u * u) / Math.Sqrt(2 * Math.PI);
                sum += density * (LogNormal(sigma * u, sigma) - LogStudentT(sigma * u, nu)) * h;
            }
            return sum;
        }
        double a = 0.1, b = 5, g = (Math.Sqrt(5) - 1) / 2;
        for (int i = 0; i < 80; i++)
        {
            double c = b - g * (b - a), d = a + g * (b - a);
            if (Kl(c) < Kl(d)) b = d; else a = c;
        }
        return (a + b) / 2;
    }
}
