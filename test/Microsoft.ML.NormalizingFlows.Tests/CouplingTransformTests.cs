namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>Coupling masks, conditioner shape, identity initialization and the affine map's soft clamp.</summary>
[TestClass]
public sealed class CouplingTransformTests
{
    private static CouplingTransform Coupling(bool[] mask, ElementwiseMap map, bool identityInit = false, long seed = 3)
    {
        var t = new CouplingTransform(mask.Length, mask, map, hiddenWidth: 16, residualBlocks: 1, identityInit, new Generator((ulong)seed));
        if (!identityInit) Perturb(t, 0.3, seed + 1);
        return t;
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void UserMaskIsHonouredKeptCoordinatesPassThroughBitForBit(bool spline)
    {
        bool[] mask = { false, true, true, false, true, false };
        ElementwiseMap map = spline ? new RationalQuadraticSplineMap(4, 3.0) : new AffineMap();
        var t = Coupling(mask, map);
        var x = torch.randn(20, mask.Length, generator: new Generator(1)) * 2;
        foreach (bool inverse in new[] { false, true })
        {
            var y = inverse ? t.Inverse(x).Output : t.Forward(x).Output;
            for (int i = 0; i < mask.Length; i++)
            {
                bool same = y[.., i].eq(x[.., i]).all().item<bool>();
                Assert.AreEqual(mask[i], same, $"coordinate {i} (kept = {mask[i]}, inverse = {inverse})");
            }
        }
        CollectionAssert.AreEqual(mask, t.Mask.ToArray());
    }

    [TestMethod]
    public void TransformedCoordinatesDependOnlyOnKeptOnes()
    {
        // ∂y_transformed/∂x_other-transformed = 0: the conditioner reads the kept part only.
        bool[] mask = { true, false, true, false };
        var t = Coupling(mask, new AffineMap());
        t.to(ScalarType.Float64);
        var x = torch.randn(5, 4, dtype: ScalarType.Float64, generator: new Generator(2)).requires_grad_(true);
        var y = t.Forward(x).Output;
        var grad1 = torch.autograd.grad(new[] { y[.., 1].sum() }, new[] { x }, retain_graph: true)[0];
        Assert.AreEqual(0.0, grad1[.., 3].abs().max().ToDouble(), "y1 must not read x3");
        Assert.IsTrue(grad1[.., 0].abs().max().ToDouble() > 0 && grad1[.., 2].abs().max().ToDouble() > 0, "y1 must read the kept x0, x2");
    }

    [TestMethod]
    public void RandomMaskIsReproducibleFromTheSeedAndBalanced()
    {
        var a = CouplingMasks.Random(9, new Generator(42));
        var b = CouplingMasks.Random(9, new Generator(42));
        CollectionAssert.AreEqual(a, b, "same seed, same mask");
        Assert.AreEqual(4, a.Count(m => m), "⌊d/2⌋ kept coordinates");
        var others = Enumerable.Range(0, 20).Select(s => string.Concat(CouplingMasks.Random(9, new Generator((ulong)(100 + s))).Select(m => m ? '1' : '0'))).Distinct().Count();
        Assert.IsTrue(others > 10, $"different seeds should give different masks ({others} distinct of 20)");

        // The builder's random masks come from its own generator: the same seed builds the same layers.
        var m1 = new FlowBuilder(7, seed: 5).RandomMask();
        var m2 = new FlowBuilder(7, seed: 5).RandomMask();
        CollectionAssert.AreEqual(m1, m2);
    }

    [TestMethod]
    public void HalvesAlternateSoEveryCoordinateIsTransformed()
    {
        CollectionAssert.AreEqual(new[] { true, true, true, false, false }, CouplingMasks.Halves(5, flip: false));
        CollectionAssert.AreEqual(new[] { false, false, false, true, true }, CouplingMasks.Halves(5, flip: true));
        var q = new FlowBuilder(5, seed: 1).AffineCoupling().AffineCoupling().SplineCoupling().Build();
        var masks = ((CompositeTransform)q.Transform!).Steps.Cast<CouplingTransform>().Select(c => c.Mask.ToArray()).ToArray();
        CollectionAssert.AreEqual(masks[0].Select(m => !m).ToArray(), masks[1]);
        CollectionAssert.AreEqual(masks[0], masks[2]);
    }

    [TestMethod]
    public void InvalidMasksAreRejectedNamingTheArgument()
    {
        var map = new AffineMap();
        foreach (var (mask, what) in new[] { (new[] { true, true, true }, "all kept"), (new[] { false, false, false }, "all transformed"), (new[] { true, false }, "wrong length") })
        {
            var e = Assert.ThrowsExactly<ArgumentException>(() => new CouplingTransform(3, mask, map), what);
            Assert.AreEqual("mask", e.ParamName, what);
        }
        Assert.AreEqual("mask", Assert.ThrowsExactly<ArgumentNullException>(() => new CouplingTransform(3, null!, map)).ParamName);
        Assert.AreEqual("dimension", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new CouplingTransform(1, new[] { true }, map)).ParamName);
        Assert.AreEqual("dimension", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => CouplingMasks.Halves(1, false)).ParamName);
        Assert.AreEqual("dimension", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => CouplingMasks.Random(1, null)).ParamName);
        // The builder checks user masks the same way.
        Assert.AreEqual("mask", Assert.ThrowsExactly<ArgumentException>(() => new FlowBuilder(3).SplineCoupling(new[] { true, true, true })).ParamName);
    }

    [TestMethod]
    public void ConditionerWidthAndDepthAreConfigurable()
    {
        // kept→w, then 2 layers w→w per residual block, then w→transformed·P (weights and biases): the
        // conditioner neither reads the transformed coordinates nor emits parameters for the kept ones.
        bool[] mask = { true, false, false, true, false };
        const int kept = 2, transformed = 3;
        foreach (var (width, blocks) in new[] { (7, 0), (7, 3), (20, 2) })
            foreach (ElementwiseMap map in new ElementwiseMap[] { new AffineMap(), new RationalQuadraticSplineMap(4, 3.0) })
            {
                int p = map.ParametersPerDimension;
                long expected = (kept * width + width) + 2L * blocks * (width * width + width) + (width * transformed * p + transformed * p);
                var t = new CouplingTransform(mask.Length, mask, map, width, blocks);
                Assert.AreEqual(expected, t.parameters().Sum(x => x.numel()), $"width {width}, blocks {blocks}, {map.GetType().Name}");
            }
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new CouplingTransform(2, new[] { true, false }, new AffineMap(), hiddenWidth: 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new CouplingTransform(2, new[] { true, false }, new AffineMap(), residualBlocks: -1));
    }

    public static IEnumerable<object[]> IdentityInitLayers()
    {
        yield return new object[] { "affine-coupling", 0.0 };
        yield return new object[] { "spline-coupling", 1e-6 };
        yield return new object[] { "iaf-affine", 0.0 };
        yield return new object[] { "maf-affine", 0.0 };
        yield return new object[] { "iaf-spline", 1e-6 };
        yield return new object[] { "maf-spline", 1e-6 };
    }

    private static FlowTransform IdentityInitLayer(string name, int d, bool identityInit)
    {
        var g = new Generator(8);
        return name switch
        {
            "affine-coupling" => new CouplingTransform(d, CouplingMasks.Halves(d, false), new AffineMap(), 16, 2, identityInit, g),
            "spline-coupling" => new CouplingTransform(d, CouplingMasks.Halves(d, false), new RationalQuadraticSplineMap(6, 3.0), 16, 2, identityInit, g),
            "iaf-affine" => new MaskedAutoregressiveTransform(d, new AffineMap(), AutoregressiveDirection.Inverse, 16, 2, identityInit, g),
            "maf-affine" => new MaskedAutoregressiveTransform(d, new AffineMap(), AutoregressiveDirection.Masked, 16, 2, identityInit, g),
            "iaf-spline" => new MaskedAutoregressiveTransform(d, new RationalQuadraticSplineMap(6, 3.0), AutoregressiveDirection.Inverse, 16, 2, identityInit, g),
            "maf-spline" => new MaskedAutoregressiveTransform(d, new RationalQuadraticSplineMap(6, 3.0), AutoregressiveDirection.Masked, 16, 2, identityInit, g),
            _ => throw new ArgumentException(name),
        };
    }

    /// <summary>
    /// identityInit: the layer is the identity with log|det J| = 0 at construction (float32), in both
    /// directions, for points inside and outside a spline's interval. The affine map is exact
    /// (x·exp(0) + 0); the spline's uniform knots are exact only up to rounding of the bin widths.
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(IdentityInitLayers))]
    public void IdentityInitLayersAreTheIdentityAtConstruction(string name, double tolerance)
    {
        var x = torch.randn(64, 5, generator: new Generator(4)) * 3;
        var t = IdentityInitLayer(name, 5, identityInit: true);
        foreach (bool inverse in new[] { false, true })
        {
            var (y, logDet) = inverse ? t.Inverse(x) : t.Forward(x);
            AssertClose(x, y, tolerance, $"{name} output (inverse = {inverse})");
            AssertClose(torch.zeros(64), logDet, tolerance, $"{name} log|det J| (inverse = {inverse})");
        }
        // Without the option the same layer is not the identity.
        var random = IdentityInitLayer(name, 5, identityInit: false);
        Assert.IsTrue((random.Forward(x).Output - x).abs().max().ToDouble() > 1e-3, $"{name} without identityInit should not be the identity");
    }

    [TestMethod]
    public void SoftClampBoundsTheLogScaleForHugeConditionerOutputs()
    {
        foreach (double clamp in new[] { 0.5, 3.0 })
        {
            var map = new AffineMap(clamp);
            var raw = torch.tensor(new float[] { -1e30f, -1e6f, -50, 0, 50, 1e6f, 1e30f });
            var parameters = torch.stack(new[] { torch.zeros_like(raw), raw }, -1).unsqueeze(0); // [1, 7, 2]: shift 0, ŝ = raw
            var x = torch.ones(1, 7);
            var (y, logScale) = map.Forward(x, parameters);
            AssertFinite(y, "output");
            Assert.IsTrue(logScale.abs().max().ToDouble() <= clamp, $"|s| ≤ {clamp}: {logScale.ToString(TorchSharp.TensorStringStyle.Julia)}");
            Assert.AreEqual(clamp, logScale[0, 6].ToDouble(), 1e-6, "saturates at +c");
            Assert.AreEqual(-clamp, logScale[0, 0].ToDouble(), 1e-6, "saturates at −c");
            Assert.AreEqual(0.0, logScale[0, 3].ToDouble(), "ŝ = 0 is scale 1");
            var (back, inverseLogScale) = map.Inverse(y, parameters);
            AssertClose(x, back, 1e-5, "inverse of the clamped map");
            AssertClose(-logScale, inverseLogScale, 0, "inverse log-scale");
        }
        // Near 0 the clamp is the identity: s ≈ ŝ.
        var small = new AffineMap(3.0).Forward(torch.ones(1, 1), torch.tensor(new float[] { 0, 0.01f }).reshape(1, 1, 2)).LogDerivative;
        Assert.AreEqual(0.01, small.item<float>(), 1e-7);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AffineMap(0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AffineMap(double.PositiveInfinity));
    }

    [TestMethod]
    public void CouplingWithAHugeConditionerOutputStaysFiniteWithBoundedLogDet()
    {
        // Drive the conditioner's last layer to absurd values: the log-det per transformed coordinate stays within ±c.
        var t = new CouplingTransform(4, CouplingMasks.Halves(4, false), new AffineMap(2.0), 8, 1, identityInit: false, new Generator(1));
        using (torch.no_grad())
            foreach (var p in t.parameters()) p.mul_(1e4);
        var x = torch.randn(32, 4, generator: new Generator(2)) * 10;
        var (y, logDet) = t.Forward(x);
        AssertFinite(y, "output");
        Assert.IsTrue(logDet.abs().max().ToDouble() <= 2 * 2.0 + 1e-5, "two transformed coordinates, |s| ≤ 2 each");
    }
}
