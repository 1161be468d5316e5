namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>
/// IAF and MAF: which direction is the one-pass one, and that both directions have the autoregressive
/// (lower-triangular) Jacobian the MADE masks promise.
/// </summary>
[TestClass]
public sealed class AutoregressiveTransformTests
{
    private const int D = 5;

    private static MaskedAutoregressiveTransform Made(AutoregressiveDirection direction, bool spline, long seed = 4)
    {
        ElementwiseMap map = spline ? new RationalQuadraticSplineMap(4, 3.0) : new AffineMap();
        var t = new MaskedAutoregressiveTransform(D, map, direction, hiddenWidth: 16, residualBlocks: 2, identityInit: false, new Generator((ulong)seed));
        Perturb(t, 0.3, seed + 1);
        t.to(ScalarType.Float64);
        return t;
    }

    /// <summary>Counts the MADE network's evaluations while <paramref name="run"/> executes.</summary>
    private static int ConditionerPasses(MaskedAutoregressiveTransform t, Action run)
    {
        var made = (ResidualNetwork)t.named_children().Single(c => c.name == "made").module;
        int passes = 0;
        var hook = made.register_forward_hook((_, _, output) => { passes++; return output; });
        try { run(); }
        finally { hook.remove(); }
        return passes;
    }

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void IafSamplesInOnePassAndMafEvaluatesDensityInOnePass(bool spline)
    {
        var x = torch.randn(8, D, dtype: ScalarType.Float64, generator: new Generator(2));
        var iaf = Made(AutoregressiveDirection.Inverse, spline);
        var maf = Made(AutoregressiveDirection.Masked, spline);
        Assert.AreEqual(1, ConditionerPasses(iaf, () => iaf.Forward(x)), "IAF forward (sampling) must be one pass");
        Assert.AreEqual(D, ConditionerPasses(iaf, () => iaf.Inverse(x)), "IAF inverse is d sequential passes");
        Assert.AreEqual(1, ConditionerPasses(maf, () => maf.Inverse(x)), "MAF inverse (density) must be one pass");
        Assert.AreEqual(D, ConditionerPasses(maf, () => maf.Forward(x)), "MAF forward (sampling) is d sequential passes");
    }

    public static IEnumerable<object[]> Directions() =>
        from direction in new[] { AutoregressiveDirection.Inverse, AutoregressiveDirection.Masked }
        from spline in new[] { false, true }
        from inverse in new[] { false, true }
        select new object[] { direction, spline, inverse };

    /// <summary>
    /// Output i may depend on inputs 0..i only (in index order), in both directions: the Jacobian is
    /// exactly lower-triangular, with a non-zero diagonal, and every output after the first really does
    /// read earlier inputs (so the masks are not simply cutting everything).
    /// </summary>
    [TestMethod]
    [DynamicData(nameof(Directions))]
    public void JacobianIsLowerTriangularInIndexOrder(AutoregressiveDirection direction, bool spline, bool inverse)
    {
        var t = Made(direction, spline);
        var x = (torch.randn(3, D, dtype: ScalarType.Float64, generator: new Generator(6)) * 1.5).requires_grad_(true);
        var y = inverse ? t.Inverse(x).Output : t.Forward(x).Output;
        for (int i = 0; i < D; i++)
        {
            var row = torch.autograd.grad(new[] { y[.., i].sum() }, new[] { x }, retain_graph: true)[0]; // [B, D]: ∂y_i/∂x
            for (int j = i + 1; j < D; j++)
                Assert.AreEqual(0.0, row[.., j].abs().max().ToDouble(), $"output {i} depends on later input {j}");
            Assert.IsTrue(row[.., i].abs().min().ToDouble() > 0, $"output {i} must depend on input {i}");
            if (i > 0)
                Assert.IsTrue(row[.., ..i].abs().sum().ToDouble() > 1e-6, $"output {i} ignores its predecessors");
        }
    }
}
