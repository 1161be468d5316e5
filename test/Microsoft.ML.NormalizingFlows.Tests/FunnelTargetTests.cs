namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class FunnelTargetTests
{
    private static double LogNormal(double x, double sd) => -0.5 * Math.Log(2 * Math.PI * sd * sd) - 0.5 * x * x / (sd * sd);

    [TestMethod]
    public void LogDensityIsTheProductOfItsNormalFactors()
    {
        var funnel = new FunnelTarget(dimension: 3);
        var z = torch.tensor(new[] { 1.0, 0.5, -2.0, -4.0, 0.01, 0.03 }, dtype: ScalarType.Float64).reshape(2, 3);
        var logP = funnel.Evaluate(z).data<double>().ToArray();
        // v ~ N(0, 3²), x | v ~ N(0, e^v): the sd of x is e^{v/2}.
        double first = LogNormal(1, 3) + LogNormal(0.5, Math.Exp(0.5)) + LogNormal(-2, Math.Exp(0.5));
        double second = LogNormal(-4, 3) + LogNormal(0.01, Math.Exp(-2)) + LogNormal(0.03, Math.Exp(-2));
        Assert.AreEqual(first, logP[0], 1e-12);
        Assert.AreEqual(second, logP[1], 1e-12);
        Assert.AreEqual(0.0, funnel.LogNormalizer);
    }

    [TestMethod]
    public void TwoDimensionalFunnelIntegratesToOne()
    {
        // ∫∫ p(v, x) dx dv by midpoint quadrature after x = e^{v/2} u (dx = e^{v/2} du), which makes the
        // integrand's width in u the same for every v; v over ±8 sd, u over ±10.
        var funnel = new FunnelTarget(dimension: 2, scale: 1.5);
        int n = 800;
        double vHalf = 8 * 1.5, uHalf = 10, dv = 2 * vHalf / n, du = 2 * uHalf / n;
        var v = torch.linspace(-vHalf + dv / 2, vHalf - dv / 2, n, dtype: ScalarType.Float64);
        var u = torch.linspace(-uHalf + du / 2, uHalf - du / 2, n, dtype: ScalarType.Float64);
        var grid = torch.meshgrid(new[] { v, u }, indexing: "ij");
        var vv = grid[0].flatten();
        var x = (vv / 2).exp() * grid[1].flatten();
        var logIntegrand = funnel.Evaluate(torch.stack(new[] { vv, x }, 1)) + vv / 2;
        double logZ = (logIntegrand.logsumexp(0) + Math.Log(dv * du)).item<double>();
        Assert.AreEqual(0.0, logZ, 1e-6);
    }

    [TestMethod]
    public void GalleryFunnelIsNealsTenDimensionalOne()
    {
        var funnel = (FunnelTarget)TargetGallery.Create("funnel");
        Assert.AreEqual((10, 3.0), (funnel.Dimension, funnel.Scale));
        Assert.IsTrue(funnel.IsProper);
    }

    [TestMethod]
    public void BadArgumentsNameTheArgument()
    {
        Assert.AreEqual("dimension", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new FunnelTarget(1)).ParamName);
        Assert.AreEqual("scale", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new FunnelTarget(10, 0)).ParamName);
        Assert.AreEqual("scale", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new FunnelTarget(10, double.NaN)).ParamName);
        Assert.AreEqual("scale", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new FunnelTarget(10, double.PositiveInfinity)).ParamName);
    }
}
