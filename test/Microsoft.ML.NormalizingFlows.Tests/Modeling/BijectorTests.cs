using Microsoft.ML.NormalizingFlows.Modeling.Constraints;
using Microsoft.ML.NormalizingFlows.Modeling.Distributions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Modeling;

/// <summary>Every constraint's bijector: log |det J| against the autograd Jacobian, round trips, and values that satisfy the constraint exactly.</summary>
[TestClass]
public sealed class BijectorTests
{
    public TestContext TestContext { get; set; } = null!;

    public static IEnumerable<object[]> Cases() => new (string Name, Constraint Constraint, long[] Shape)[]
    {
        ("real", Constraint.Real, new long[] { 3 }),
        ("positive", Constraint.Positive, new long[] { 2, 2 }),
        ("greater than -1.5", Constraint.GreaterThan(-1.5), new long[] { 3 }),
        ("less than 2", Constraint.LessThan(2), new long[] { 3 }),
        ("interval(-2, 5)", Constraint.Interval(-2, 5), new long[] { 4 }),
        ("unit interval", Constraint.UnitInterval, new long[] { 3 }),
        ("simplex 2", Constraint.Simplex, new long[] { 2 }),
        ("simplex 5", Constraint.Simplex, new long[] { 5 }),
        ("ordered", Constraint.Ordered, new long[] { 4 }),
        ("positive ordered", Constraint.PositiveOrdered, new long[] { 4 }),
        ("correlation Cholesky 2", Constraint.CorrelationCholesky, new long[] { 2, 2 }),
        ("correlation Cholesky 4", Constraint.CorrelationCholesky, new long[] { 4, 4 }),
        ("lower Cholesky 3", Constraint.LowerCholesky, new long[] { 3, 3 }),
    }.Select(c => new object[] { c.Name, c.Constraint, c.Shape });

    /// <summary>The free entries of a value (what the Jacobian is taken with respect to).</summary>
    private static Tensor FreeEntries(Constraint constraint, Tensor value, long[] shape)
    {
        if (ReferenceEquals(constraint, Constraint.Simplex)) return value.narrow(1, 0, shape[0] - 1);
        if (ReferenceEquals(constraint, Constraint.CorrelationCholesky) || ReferenceEquals(constraint, Constraint.LowerCholesky))
        {
            int k = (int)shape[0];
            bool diagonal = ReferenceEquals(constraint, Constraint.LowerCholesky);
            var picks = new List<long>();
            for (int i = 0; i < k; i++) for (int j = 0; j < (diagonal ? i + 1 : i); j++) picks.Add(i * k + j);
            return value.reshape(value.shape[0], -1).index_select(1, torch.tensor(picks.ToArray()));
        }
        return value.reshape(value.shape[0], -1);
    }

    [TestMethod]
    [DynamicData(nameof(Cases))]
    public void LogDetMatchesAutogradAndInverseRoundTrips(string name, Constraint constraint, long[] shape)
    {
        var bijector = constraint.BijectorFor(shape);
        int n = bijector.UnconstrainedSize;
        var x = torch.randn(new long[] { 6, n }, dtype: ScalarType.Float64, generator: new Generator(11)) * 1.3;
        var (value, logDet) = bijector.Forward(x);
        CollectionAssert.AreEqual(new[] { 6L }.Concat(shape).ToArray(), value.shape, name);
        // Round trip.
        var back = bijector.Inverse(value);
        Assert.IsTrue((back - x).abs().max().item<double>() < 1e-10, $"{name}: round trip off by {(back - x).abs().max().item<double>():E2}");
        // Brute-force Jacobian of x ↦ free entries of y, one draw at a time.
        for (int b = 0; b < 6; b++)
        {
            var xb = x[b].unsqueeze(0).detach().requires_grad_(true);
            var free = FreeEntries(constraint, bijector.Forward(xb).Value, shape).squeeze(0);
            Assert.AreEqual(n, (int)free.shape[0], $"{name}: free entries");
            var rows = new Tensor[n];
            for (int i = 0; i < n; i++)
                rows[i] = torch.autograd.grad(new[] { free[i] }, new[] { xb }, retain_graph: true)[0].squeeze(0);
            double expected = torch.linalg.slogdet(torch.stack(rows)).Item2.item<double>();
            Assert.AreEqual(expected, logDet[b].item<double>(), 1e-9, $"{name}: log|det J| of draw {b}");
        }
    }

    [TestMethod]
    public void ValuesSatisfyTheirConstraintsExactly()
    {
        var x = torch.randn(new long[] { 2_000, 10 }, dtype: ScalarType.Float64, generator: new Generator(3)) * 4;
        Tensor Value(Constraint c, long[] shape) => c.BijectorFor(shape).Forward(x.narrow(1, 0, c.BijectorFor(shape).UnconstrainedSize)).Value;
        Assert.IsTrue(Value(Constraint.Positive, new long[] { 5 }).gt(0).all().item<bool>());
        var interval = Value(Constraint.Interval(-2, 5), new long[] { 5 });
        Assert.IsTrue(interval.ge(-2).logical_and(interval.le(5)).all().item<bool>());
        Assert.IsTrue(Value(Constraint.GreaterThan(3), new long[] { 2 }).gt(3).all().item<bool>());
        Assert.IsTrue(Value(Constraint.LessThan(-1), new long[] { 2 }).lt(-1).all().item<bool>());
        var simplex = Value(Constraint.Simplex, new long[] { 6 });
        Assert.IsTrue(simplex.ge(0).all().item<bool>());
        Assert.IsTrue((simplex.sum(1) - 1).abs().max().item<double>() < 1e-12, "simplex sums to 1");
        var ordered = Value(Constraint.Ordered, new long[] { 6 });
        Assert.IsTrue((ordered.narrow(1, 1, 5) - ordered.narrow(1, 0, 5)).gt(0).all().item<bool>(), "increasing");
        var positiveOrdered = Value(Constraint.PositiveOrdered, new long[] { 6 });
        Assert.IsTrue(positiveOrdered.narrow(1, 0, 1).gt(0).all().item<bool>());
        var l = Value(Constraint.CorrelationCholesky, new long[] { 4, 4 });
        Assert.IsTrue((l.square().sum(2) - 1).abs().max().item<double>() < 1e-12, "unit rows: a correlation matrix's diagonal is 1");
        Assert.IsTrue(l.triu(1).abs().max().item<double>() == 0, "lower triangular");
        Assert.IsTrue(l.diagonal(dim1: 1, dim2: 2).gt(0).all().item<bool>(), "positive diagonal");
        var c = Value(Constraint.LowerCholesky, new long[] { 3, 3 });
        Assert.IsTrue(c.triu(1).abs().max().item<double>() == 0 && c.diagonal(dim1: 1, dim2: 2).gt(0).all().item<bool>());
    }

    [TestMethod]
    public void LkjDensityPushedThroughTheBijectorIntegratesToOneForThreeByThree()
    {
        // ∫ p_LKJ(L(x)) |det J(x)| dx over R³ = 1 checks the LKJ normalizer and the bijector's Jacobian together.
        // Integrated over z = tanh(x) ∈ (−1, 1)³ (dx = dz / (1 − z²)) on a midpoint grid.
        var lkj = new LkjCholesky(3, 2.0);
        var bijector = Constraint.CorrelationCholesky.BijectorFor(new long[] { 3, 3 });
        int m = 80;
        var grid = torch.linspace(-1 + 1.0 / m, 1 - 1.0 / m, m, dtype: ScalarType.Float64);
        var mesh = torch.meshgrid(new[] { grid, grid, grid }, indexing: "ij");
        var z = torch.stack(mesh.Select(t => t.flatten()).ToArray(), 1);
        var x = torch.atanh(z);
        var (l, logDet) = bijector.Forward(x);
        var logDxDz = torch.log1p(-z.square()).neg().sum(1);
        double integral = (lkj.LogProb(l) + logDet + logDxDz).exp().sum().item<double>() * Math.Pow(2.0 / m, 3);
        TestContext.WriteLine($"∫ = {integral:F6}");
        Assert.AreEqual(1.0, integral, 2e-3);
    }

    [TestMethod]
    public void ShapesThatDoNotSuitAConstraintAreRefusedNamingIt()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => Constraint.Simplex.BijectorFor(new long[] { 2, 3 }));
        StringAssert.Contains(e.Message, "simplex");
        Assert.ThrowsExactly<ArgumentException>(() => Constraint.CorrelationCholesky.BijectorFor(new long[] { 3, 4 }));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Constraint.Interval(2, 1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Constraint.GreaterThan(double.NaN));
        var bijector = Constraint.Positive.BijectorFor(new long[] { 3 });
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => bijector.Forward(torch.zeros(4, 2))).Message, "[B, 3]");
    }
}
