namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>
/// The rational-quadratic spline map on its own: linear (slope-1) tails outside [−B, B], NaN-free
/// gradients far outside and exactly at ±B (the inputs are clipped before the spline arithmetic),
/// continuity at the boundary, monotonicity.
/// </summary>
[TestClass]
public sealed class SplineMapTests
{
    private const double B = 2.5;
    private const int Bins = 5;

    /// <summary>Random, far-from-identity parameters [n, d, 3K − 1] that require grad.</summary>
    private static Tensor RandomParameters(long n, long d, ScalarType dtype, ulong seed = 1) =>
        (torch.randn(n, d, 3 * Bins - 1, generator: new Generator(seed)) * 2).to(dtype).requires_grad_(true);

    private static RationalQuadraticSplineMap Map() => new(Bins, B);

    public static IEnumerable<object[]> Cases() =>
        from dtype in new[] { ScalarType.Float32, ScalarType.Float64 }
        from inverse in new[] { false, true }
        select new object[] { dtype, inverse };

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void GradientsAreFiniteFarOutsideAndExactlyAtTheBounds(ScalarType dtype, bool inverse)
    {
        double huge = dtype == ScalarType.Float32 ? 3e38 : 1e300;
        var values = new[] { -huge, -1e30, -1e6, -B - 1e-3, -B, -B + 1e-6, 0, B - 1e-6, B, B + 1e-3, 1e6, 1e30, huge };
        var x = torch.tensor(values, dtype: ScalarType.Float64).to(dtype).reshape(1, values.Length).requires_grad_(true);
        var p = RandomParameters(1, values.Length, dtype);
        var (y, logDerivative) = inverse ? Map().Inverse(x, p) : Map().Forward(x, p);
        AssertFinite(y, "output");
        AssertFinite(logDerivative, "log-derivative");
        (y.sum() + logDerivative.sum()).backward();
        AssertFinite(x.grad!, "input gradient");
        AssertFinite(p.grad!, "parameter gradient");
        // Outside the interval the parameters have no influence at all.
        for (int i = 0; i < values.Length; i++)
            if (Math.Abs(values[i]) > B)
                Assert.AreEqual(0.0, p.grad![0, i].abs().max().ToDouble(), $"x = {values[i]:g}: parameters must not matter in the tails");
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void TailsAreTheIdentityWithSlopeOne(ScalarType dtype, bool inverse)
    {
        var values = new[] { -1e6, -100, -B - 0.5, -B - 1e-4, B + 1e-4, B + 0.5, 100, 1e6 };
        var x = torch.tensor(values, dtype: ScalarType.Float64).to(dtype).reshape(1, values.Length).requires_grad_(true);
        var (y, logDerivative) = inverse ? Map().Inverse(x, RandomParameters(1, values.Length, dtype)) : Map().Forward(x, RandomParameters(1, values.Length, dtype));
        Assert.IsTrue(y.eq(x).all().item<bool>(), "y = x outside [−B, B]");
        Assert.IsTrue(logDerivative.eq(0).all().item<bool>(), "log g′ = 0 outside [−B, B]");
        y.sum().backward();
        Assert.IsTrue(x.grad!.eq(1).all().item<bool>(), "slope 1 outside [−B, B]");
    }

    [TestMethod]
    public void TheSplineMapsTheIntervalOntoItselfAndJoinsTheTailsContinuously()
    {
        var p = RandomParameters(1, 2, ScalarType.Float64, seed: 4);
        var x = torch.tensor(new[] { -B, B }, dtype: ScalarType.Float64).reshape(1, 2);
        foreach (bool inverse in new[] { false, true })
        {
            var (y, logDerivative) = inverse ? Map().Inverse(x, p) : Map().Forward(x, p);
            AssertClose(x, y.detach(), 1e-12, $"±B are fixed points (inverse = {inverse})");
            // The boundary knot derivatives are 1, matching the tails: log g′ = 0 at ±B.
            AssertClose(torch.zeros(1, 2, dtype: ScalarType.Float64), logDerivative.detach(), 1e-9, $"slope 1 at ±B (inverse = {inverse})");
        }
        // Just inside and just outside agree to first order.
        var eps = 1e-7;
        var near = torch.tensor(new[] { B - eps, B + eps }, dtype: ScalarType.Float64).reshape(1, 2);
        var pSame = p.narrow(1, 1, 1).expand(1, 2, 3 * Bins - 1);
        var yNear = Map().Forward(near, pSame).Output;
        Assert.AreEqual(2 * eps, (yNear[0, 1] - yNear[0, 0]).ToDouble(), 1e-9);
    }

    [TestMethod]
    [DataRow(0.05, 0.02)] // unequal minimum sizes: each knot set is built on its own
    [DataRow(0.02, 0.05)]
    [DataRow(0.04, 0.04)] // equal: both knot sets in one pass
    public void EachKnotSetHonoursItsOwnMinimumBinSize(double minWidth, double minHeight)
    {
        // Widths all but concentrated in the last bin (logits −50 … 50) leave the first K − 1 bins at the minimum width,
        // heights uniform (logits 0): the first inner knot sits at x = −B + 2B·minWidth and maps exactly to y = −B + 2B/K.
        // And the mirror case for heights. A swap of the two minimums moves the knot and fails this.
        var map = new RationalQuadraticSplineMap(Bins, B, minWidth, minHeight);
        var skewed = Enumerable.Repeat(-50.0, Bins - 1).Append(50.0).ToArray();
        var flat = new double[Bins];
        var derivatives = new double[Bins - 1];
        foreach (bool widthsSkewed in new[] { true, false })
        {
            var raw = (widthsSkewed ? skewed.Concat(flat) : flat.Concat(skewed)).Concat(derivatives).ToArray();
            var p = torch.tensor(raw, dtype: ScalarType.Float64).reshape(1, 1, 3 * Bins - 1);
            double knotX = widthsSkewed ? -B + 2 * B * minWidth : -B + 2 * B / Bins;
            double knotY = widthsSkewed ? -B + 2 * B / Bins : -B + 2 * B * minHeight;
            var y = map.Forward(torch.tensor(new[] { knotX }, dtype: ScalarType.Float64).reshape(1, 1), p).Output;
            Assert.AreEqual(knotY, y.ToDouble(), 1e-9, $"knot of the {(widthsSkewed ? "widths" : "heights")} (minWidth {minWidth}, minHeight {minHeight})");
            var x = map.Inverse(torch.tensor(new[] { knotY }, dtype: ScalarType.Float64).reshape(1, 1), p).Output;
            Assert.AreEqual(knotX, x.ToDouble(), 1e-9, "the inverse maps the knot back");
        }
    }

    [TestMethod]
    public void SplineIsStrictlyMonotoneAndInvertibleInsideTheInterval()
    {
        var x = torch.linspace(-B, B, 2001, dtype: ScalarType.Float64).reshape(1, 2001);
        var p = RandomParameters(1, 1, ScalarType.Float64, seed: 7).detach().expand(1, 2001, 3 * Bins - 1);
        var (y, logDerivative) = Map().Forward(x, p);
        Assert.IsTrue((y[0, 1..] - y[0, ..^1]).min().ToDouble() > 0, "strictly increasing");
        var (back, inverseLog) = Map().Inverse(y, p);
        AssertClose(x, back, 1e-10, "inverse");
        AssertClose(-logDerivative, inverseLog, 1e-8, "inverse log-derivative");
    }

    [TestMethod]
    public void InvalidSettingsAreRejectedNamingTheArgument()
    {
        Assert.AreEqual("bins", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new RationalQuadraticSplineMap(0)).ParamName);
        Assert.AreEqual("bound", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new RationalQuadraticSplineMap(4, -1)).ParamName);
        Assert.AreEqual("bound", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new RationalQuadraticSplineMap(4, double.NaN)).ParamName);
        Assert.AreEqual("minBinWidth", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new RationalQuadraticSplineMap(4, 3, minBinWidth: 0.25)).ParamName);
        Assert.AreEqual("minDerivative", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new RationalQuadraticSplineMap(4, 3, minDerivative: 0)).ParamName);
    }
}
