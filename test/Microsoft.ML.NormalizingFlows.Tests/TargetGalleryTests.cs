namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class TargetGalleryTests
{
    /// <summary>Reference values: shared/bench/logz_reference.py (float64 quadrature; U2–U4 with z1 in [−4, 4]).</summary>
    [TestMethod]
    [DataRow("u1", 1.87750)]
    [DataRow("ring", 2.31329)]
    [DataRow("u2", 2.08234)]
    [DataRow("u3", 2.64197)]
    [DataRow("u4", 2.71096)]
    public void QuadratureLogNormalizerMatchesTheReference(string name, double reference)
    {
        var target = TargetGallery.Create(name);
        Assert.AreEqual(reference, target.LogNormalizer!.Value, 1e-3, $"log Z of {name}");
    }

    [TestMethod]
    public void RingIsTheSeedsFormulaWithItsGradient()
    {
        // The gallery's ring is written with the squares expanded (fewer operations); the seed's form, term by term:
        // U = ½((‖z‖ − 4)/0.4)² − log(exp(−½((z1 − 2)/0.8)²) + exp(−½((z1 + 2)/0.8)²)).
        var z = (torch.randn(500, 2, dtype: ScalarType.Float64, generator: new Generator(3)) * 4).requires_grad_();
        var z1 = z[.., 0];
        var seed = -(0.5 * ((z.norm(1) - 4) / 0.4).square()
                     - torch.logaddexp(-0.5 * ((z1 - 2) / 0.8).square(), -0.5 * ((z1 + 2) / 0.8).square()));
        var ring = TargetGallery.Create("ring").Evaluate(z);
        AssertClose(seed, ring, 1e-9, "log p̃");
        var expected = torch.autograd.grad(new[] { seed.sum() }, new[] { z }, retain_graph: true)[0];
        var actual = torch.autograd.grad(new[] { ring.sum() }, new[] { z })[0];
        AssertClose(expected, actual, 1e-9, "∇ log p̃");
    }

    [TestMethod]
    public void ProperVariantsAreProperAndAddOnlyTheWallsMass()
    {
        foreach (var k in new[] { "u2", "u3", "u4" })
        {
            var seedForm = TargetGallery.Create(k);
            var proper = TargetGallery.Create(k + "-proper");
            Assert.IsFalse(seedForm.IsProper);
            Assert.IsTrue(proper.IsProper);
            // The wall adds mass only beyond |z1| = 4: log Z grows, but by less than log(1 + 2·0.25/8 + ...) ≈ 0.1.
            double gain = proper.LogNormalizer!.Value - seedForm.LogNormalizer!.Value;
            Assert.IsTrue(gain > 0 && gain < 0.1, $"{k}: proper − seed log Z = {gain}");
        }
    }

    [TestMethod]
    public void TwoMoonsIsANormalizableBimodalDensity()
    {
        var moons = TargetGallery.Create("two-moons");
        double logZ = moons.LogNormalizer!.Value;
        // Two arcs of length 2π·2/2 each, Gaussian cross-section σ√(2π) (ends add a little): Z ≈ 2·2π·0.2·√(2π) ≈ 6.3.
        Assert.AreEqual(Math.Log(2 * 2 * Math.PI * 0.2 * Math.Sqrt(2 * Math.PI)), logZ, 0.1);
        var onArc = moons.Evaluate(torch.tensor(new float[] { -1, 1.5f, 1, -1.5f }).reshape(2, 2));
        var between = moons.Evaluate(torch.tensor(new float[] { 0, 0 }).reshape(1, 2));
        Assert.IsTrue(onArc.min().ToDouble() > between.max().ToDouble() + 5);
    }

    [TestMethod]
    public void UnknownTargetNameListsTheKnownOnes()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => TargetGallery.Create("banana"));
        StringAssert.Contains(e.Message, "banana");
        StringAssert.Contains(e.Message, "ring");
        Assert.AreEqual("name", e.ParamName);
    }

    [TestMethod]
    public void TargetShapeErrorsNameTheTarget()
    {
        var wrong = Target.FromDelegate("my-posterior", 2, z => z.sum(1, keepdim: true));
        var e = Assert.ThrowsExactly<TargetException>(() => wrong.Evaluate(torch.zeros(5, 2)));
        StringAssert.Contains(e.Message, "my-posterior");
        StringAssert.Contains(e.Message, "[5, 1]");
        var throwing = Target.FromDelegate("thrower", 2, _ => throw new InvalidOperationException("boom"));
        var e2 = Assert.ThrowsExactly<TargetException>(() => throwing.Evaluate(torch.zeros(5, 2)));
        StringAssert.Contains(e2.Message, "thrower");
        StringAssert.Contains(e2.Message, "boom");
        Assert.ThrowsExactly<ArgumentException>(() => wrong.Evaluate(torch.zeros(5, 3)));
    }

    [TestMethod]
    public void ALibtorchErrorInATargetGivesOneLineNamingTheTarget()
    {
        // Reproduction: the message carried libtorch's whole C++ backtrace ("Exception raised from … frame #0 …").
        var mismatched = Target.FromDelegate("bad-matmul", 2, z => z.reshape(7, 3).sum(1));
        var e = Assert.ThrowsExactly<TargetException>(() => mismatched.Evaluate(torch.zeros(5, 2)));
        StringAssert.StartsWith(e.Message, "Target 'bad-matmul' threw");
        Assert.IsFalse(e.Message.Contains('\n'), e.Message);
        Assert.IsFalse(e.Message.Contains("frame #"), e.Message);
        StringAssert.Contains(e.Message, "is invalid for input of size 10");
        StringAssert.Contains(e.InnerException!.Message, "Exception raised from", "the full text stays in the inner exception");
    }
}
