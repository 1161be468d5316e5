using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>
/// Every transform: log|det J| = autograd's (float64) for d ∈ {1, 2, 5, 16} (couplings need d ≥ 2, so
/// they are checked for d ∈ {2, 5, 16}); inverse round trips; finite values and gradients at ±1e3,
/// with batch size 1 and d = 1.
/// </summary>
[TestClass]
public sealed class TransformJacobianTests
{
    private static readonly int[] Dimensions = { 1, 2, 5, 16 };

    /// <summary>name → (minimum d, factory(d, seed)). Layers are perturbed away from their identity init.</summary>
    public static readonly (string Name, int MinDimension, Func<int, long, FlowTransform> Create)[] Catalog =
    {
        ("planar", 1, (d, s) => new PlanarFlow(d, 4, 0.5, new Generator((ulong)s))),
        ("radial", 1, (d, s) => new RadialFlow(d, 4, 0.5, new Generator((ulong)s))),
        ("affine-coupling", 2, (d, s) => new CouplingTransform(d, CouplingMasks.Halves(d, false), new AffineMap(), 16, 1, false, new Generator((ulong)s))),
        ("affine-coupling-random-mask", 2, (d, s) => new CouplingTransform(d, CouplingMasks.Random(d, new Generator((ulong)s)), new AffineMap(), 16, 2, false, new Generator((ulong)s))),
        ("spline-coupling", 2, (d, s) => new CouplingTransform(d, CouplingMasks.Halves(d, true), new RationalQuadraticSplineMap(6, 3.0), 16, 1, false, new Generator((ulong)s))),
        ("iaf-affine", 1, (d, s) => new MaskedAutoregressiveTransform(d, new AffineMap(), AutoregressiveDirection.Inverse, 16, 1, false, new Generator((ulong)s))),
        ("maf-affine", 1, (d, s) => new MaskedAutoregressiveTransform(d, new AffineMap(), AutoregressiveDirection.Masked, 16, 1, false, new Generator((ulong)s))),
        ("iaf-spline", 1, (d, s) => new MaskedAutoregressiveTransform(d, new RationalQuadraticSplineMap(5, 3.0), AutoregressiveDirection.Inverse, 16, 1, false, new Generator((ulong)s))),
        ("maf-spline", 1, (d, s) => new MaskedAutoregressiveTransform(d, new RationalQuadraticSplineMap(5, 3.0), AutoregressiveDirection.Masked, 16, 1, false, new Generator((ulong)s))),
        ("reverse-permutation", 1, (d, s) => PermutationTransform.Reverse(d)),
        ("random-permutation", 1, (d, s) => PermutationTransform.Random(d, new Generator((ulong)s))),
        ("lu-linear", 1, (d, s) => new LUInvertibleLinear(d, new Generator((ulong)s))),
        ("actnorm", 1, (d, s) => new ActNorm(d)),
        ("fixed-affine", 1, (d, s) => new FixedAffineTransform(Enumerable.Range(0, d).Select(i => 0.3 * i - 1).ToArray(), Enumerable.Range(0, d).Select(i => 0.5 + 0.25 * i).ToArray())),
        ("fixed-linear", 1, (d, s) => new FixedLinearTransform(Enumerable.Range(0, d).Select(i => 0.3 * i - 1).ToArray(), LowerTriangular(d, s))),
        ("composite", 2, (d, s) => new CompositeTransform(d, new FlowTransform[]
        {
            new ActNorm(d), new CouplingTransform(d, CouplingMasks.Halves(d, false), new RationalQuadraticSplineMap(4, 3.0), 8, 1, false, new Generator((ulong)s)),
            new LUInvertibleLinear(d, new Generator((ulong)s + 1)), PermutationTransform.Reverse(d),
        })),
    };

    /// <summary>A lower-triangular matrix with positive diagonal (a preconditioner's Cholesky factor).</summary>
    private static double[,] LowerTriangular(int d, long seed)
    {
        var random = new Random((int)seed);
        var l = new double[d, d];
        for (int i = 0; i < d; i++)
        {
            for (int j = 0; j < i; j++) l[i, j] = random.NextDouble() - 0.5;
            l[i, i] = 0.5 + random.NextDouble();
        }
        return l;
    }

    private static FlowTransform Make(int index, int d, ScalarType dtype, long seed = 7, double perturbation = 0.3)
    {
        var t = Catalog[index].Create(d, seed);
        Perturb(t, perturbation, seed + 100);
        t.to(dtype);
        t.eval(); // no data-dependent init: the map under test stays fixed
        return t;
    }

    public static IEnumerable<object[]> Cases() => Catalog.Select((c, i) => new object[] { i, c.Name });

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void LogDetMatchesAutogradJacobian(int index, string name)
    {
        foreach (int d in Dimensions.Where(d => d >= Catalog[index].MinDimension))
        {
            var t = Make(index, d, ScalarType.Float64);
            // N(0, 2²): the spline cases (B = 3) see points inside and in the linear tails.
            var x = torch.randn(6, d, dtype: ScalarType.Float64, generator: new Generator(3)) * 2;
            AssertLogDetMatchesAutograd(t, x, 1e-8, $"{name} d={d}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void InverseRoundTrips(int index, string name)
    {
        foreach (int d in Dimensions.Where(d => d >= Catalog[index].MinDimension))
        {
            var x64 = torch.randn(32, d, dtype: ScalarType.Float64, generator: new Generator(5)) * 1.5;
            AssertRoundTrip(Make(index, d, ScalarType.Float64), x64, 1e-10, $"{name} float64 d={d}");
            // float32: a spline's inverse loses y's rounding error divided by its slope, and IAF's d sequential
            // passes compound it; with the strongly perturbed layers above (slopes down to ~1e-2) that reaches
            // ~1e-4. Trained-like layers (perturbation 0.1) stay within 1e-5.
            AssertRoundTrip(Make(index, d, ScalarType.Float32, perturbation: 0.1), x64.to(ScalarType.Float32), 1e-5, $"{name} float32 d={d}");
        }
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void FiniteValuesAndGradientsAtExtremeInputsBatchOneAndSmallestDimension(int index, string name)
    {
        int dMin = Catalog[index].MinDimension;
        foreach (int d in new[] { dMin, 5 })
            foreach (double scale in new[] { 1e3, -1e3 })
                foreach (int batch in new[] { 1, 4 })
                {
                    var t = Make(index, d, ScalarType.Float32);
                    string label = $"{name} d={d} x={scale:g} B={batch}";
                    var x = (torch.randn(batch, d, generator: new Generator(9)).abs() + 1).mul(scale).requires_grad_(true);
                    var (y, ld) = t.Forward(x);
                    AssertFinite(y, label + " forward output");
                    AssertFinite(ld, label + " forward log-det");
                    Assert.AreEqual(batch, (int)ld.shape[0]);
                    (y.sum() + ld.sum()).backward();
                    AssertFinite(x.grad!, label + " input gradient");
                    foreach (var p in t.parameters().Where(p => p.grad is not null)) AssertFinite(p.grad!, label + " parameter gradient");
                    if (!t.HasInverse || name is "planar" or "radial") continue; // their inverses are not differentiable solvers
                    t.zero_grad();
                    var yIn = (torch.randn(batch, d, generator: new Generator(10)).abs() + 1).mul(scale).requires_grad_(true);
                    var (xb, ldb) = t.Inverse(yIn);
                    AssertFinite(xb, label + " inverse output");
                    AssertFinite(ldb, label + " inverse log-det");
                    (xb.sum() + ldb.sum()).backward();
                    AssertFinite(yIn.grad!, label + " inverse input gradient");
                    foreach (var p in t.parameters().Where(p => p.grad is not null)) AssertFinite(p.grad!, label + " inverse parameter gradient");
                }
    }
}
