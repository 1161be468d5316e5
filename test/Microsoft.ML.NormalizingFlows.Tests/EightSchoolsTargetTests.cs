namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class EightSchoolsTargetTests
{
    /// <summary>
    /// Copied from posteriordb's eight_schools_noncentered reference file (shared/data/posteriordb/
    /// eight_schools_noncentered.json, "log_density_test_points"): reference draws 0, 3333, 6666 and 9999 on the
    /// unconstrained scale (theta_trans[1..8], mu, log_tau) and "lp_unconstrained_with_jacobian" (full normalized
    /// lpdfs of every statement, plus log τ).
    /// </summary>
    private static readonly (double[] Z, double LogDensity)[] TestPoints =
    {
        (new[] { 0.7477546941976212, 0.2111888635234274, -0.8716949493585563, -0.17324857615455053, 0.1784281090272218,
                 -0.2873022329685999, 0.18993420249243181, 2.4511518826573946, 9.33884525330527, 0.5844180394642434 }, -47.24196208951796),
        (new[] { -0.8236506508266173, -0.9921857564971388, 2.3366105422763344, -0.6495462632092455, -0.24814272632536652,
                 1.040525949348565, 1.874614528430164, -0.1264323336896807, 6.2625718087435, -0.6474327042054955 }, -49.92790491361651),
        (new[] { 1.063266690058301, 0.15040274123893074, -0.568975654800581, 1.6305527803325284, 0.6533698236267851,
                 0.8795970792337223, 0.585411042238002, -0.09143977243012708, 1.6328582283921, 1.3988393932492265 }, -44.623719172221875),
        (new[] { -1.3127948461846135, 0.7505825016674215, 0.25705073933594624, -1.6557037991014272, 0.8930704047798409,
                 0.577063368244629, 0.18619348058855112, 0.7945684966242804, 2.27087494955629, 2.06242850897013 }, -48.81089903700668),
    };

    [TestMethod]
    public void LogDensityMatchesPosteriorDbTestPoints()
    {
        var target = new EightSchoolsTarget();
        var z = torch.tensor(TestPoints.SelectMany(p => p.Z).ToArray(), dtype: ScalarType.Float64).reshape(TestPoints.Length, 10);
        var logP = target.Evaluate(z).data<double>().ToArray();
        for (int i = 0; i < TestPoints.Length; i++)
            Assert.AreEqual(TestPoints[i].LogDensity, logP[i], 1e-10, $"test point {i}");
        // Float32 (training's default precision) agrees to single precision.
        var logP32 = target.Evaluate(z.to(ScalarType.Float32)).to(ScalarType.Float64).data<double>().ToArray();
        for (int i = 0; i < TestPoints.Length; i++)
            Assert.AreEqual(TestPoints[i].LogDensity, logP32[i], 1e-4, $"test point {i} in float32");
    }

    [TestMethod]
    public void ExtremeLogTauStaysFiniteAndGradientsFlow()
    {
        var target = new EightSchoolsTarget();
        var z = torch.zeros(2, 10, requires_grad: true);
        using (torch.no_grad()) { z[0, 9] = torch.tensor(60f); z[1, 9] = torch.tensor(-60f); }
        var logP = target.Evaluate(z);
        logP.sum().backward();
        // At log τ = 60, e^{2·60} overflows float32; the prior term must not (the likelihood makes it very negative, not NaN).
        Assert.IsFalse(logP.isnan().any().item<bool>());
        Assert.IsTrue(logP[1].isfinite().item<bool>());
        Assert.IsFalse(z.grad!.isnan().any().item<bool>());
    }

    [TestMethod]
    public void DescribesItsParametersAndHasNoKnownLogZ()
    {
        var target = TargetGallery.Create("eight-schools");
        Assert.AreEqual(10, target.Dimension);
        Assert.IsNull(target.LogNormalizer);
        CollectionAssert.AreEqual(new[] { "theta_trans[1]", "theta_trans[8]", "mu", "log_tau" },
            new[] { EightSchoolsTarget.ParameterNames[0], EightSchoolsTarget.ParameterNames[7], EightSchoolsTarget.ParameterNames[8], EightSchoolsTarget.ParameterNames[9] });
        Assert.AreEqual(8, EightSchoolsTarget.Y.Count);
        Assert.AreEqual(8, EightSchoolsTarget.Sigma.Count);
    }
}
