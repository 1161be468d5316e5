namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>Permutations (reverse, seeded random, user-given) and the learnable LU linear layer.</summary>
[TestClass]
public sealed class LinearTransformTests
{
    [TestMethod]
    public void PermutationsReorderTheCoordinatesAsDocumented()
    {
        var x = torch.arange(10, dtype: ScalarType.Float32).reshape(2, 5);
        var reverse = PermutationTransform.Reverse(5);
        CollectionAssert.AreEqual(new float[] { 4, 3, 2, 1, 0, 9, 8, 7, 6, 5 }, reverse.Forward(x).Output.data<float>().ToArray());

        var given = new PermutationTransform(new[] { 2, 0, 1, 4, 3 });
        var (y, logDet) = given.Forward(x);
        CollectionAssert.AreEqual(new float[] { 2, 0, 1, 4, 3, 7, 5, 6, 9, 8 }, y.data<float>().ToArray(), "output i is input Permutation[i]");
        AssertClose(torch.zeros(2), logDet, 0, "|det| = 1");
        AssertClose(x, given.Inverse(y).Output, 0, "inverse");

        var a = PermutationTransform.Random(8, new Generator(3)).Permutation.ToArray();
        CollectionAssert.AreEqual(a, PermutationTransform.Random(8, new Generator(3)).Permutation.ToArray(), "seeded");
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 8).ToArray(), a);
        Assert.AreNotEqual(string.Join(",", a), string.Join(",", PermutationTransform.Random(8, new Generator(4)).Permutation), "another seed, another order");

        foreach (var bad in new[] { new[] { 0, 0, 1 }, new[] { 1, 2, 3 }, new[] { -1, 0, 1 } })
            Assert.AreEqual("permutation", Assert.ThrowsExactly<ArgumentException>(() => new PermutationTransform(bad)).ParamName);
    }

    [TestMethod]
    public void LuLinearStartsAsItsPermutationAndLearnsEveryFactor()
    {
        var lu = new LUInvertibleLinear(4, new Generator(2));
        var w = lu.Weight.detach();
        Assert.AreEqual(4.0, w.sum().ToDouble(), "a permutation matrix: four ones");
        AssertClose(torch.ones(4), w.abs().sum(dim: 0), 0, "one 1 per column");
        AssertClose(torch.ones(4), w.abs().sum(dim: 1), 0, "one 1 per row");
        Assert.AreEqual(0.0, lu.Forward(torch.randn(3, 4)).LogAbsDetJacobian.abs().max().ToDouble());
        Assert.IsTrue(new LUInvertibleLinear(4).Weight.detach().equal(torch.eye(4)).all().item<bool>(), "without a generator: the identity");

        // Every factor and the bias get gradients, and after a step W is a general (non-permutation) matrix
        // whose log|det| is still the reported one.
        var x = torch.randn(16, 4, generator: new Generator(1));
        var (y, _) = lu.Forward(x);
        (y * torch.randn(16, 4, generator: new Generator(5))).sum().backward();
        foreach (var (name, p) in lu.named_parameters())
            Assert.IsTrue(p.grad is not null && p.grad.abs().sum().ToDouble() > 0, $"{name} gets a gradient");
        using (torch.no_grad()) foreach (var p in lu.parameters()) p.sub_(p.grad! * 0.1);
        lu.to(ScalarType.Float64);
        var x64 = x.to(ScalarType.Float64);
        AssertClose(torch.linalg.slogdet(lu.Weight.detach()).Item2.expand(16), lu.Forward(x64).LogAbsDetJacobian.detach(), 1e-12, "log|det W|");
        AssertRoundTrip(lu, x64, 1e-12);
    }

    [TestMethod]
    public void FixedAffineIsExactInFloat64()
    {
        // Reproduction: location and scale lived in float32 buffers, so a float64 fit through them was rounded.
        double[] location = { 1 + 1e-12, -3.000000001 }, scale = { 1e-7 * (1 + 1e-10), 2.5 };
        var affine = new FixedAffineTransform(location, scale);
        affine.to(ScalarType.Float64);
        var x = torch.tensor(new[,] { { 1.0, -2.0 } }, ScalarType.Float64);
        var (y, logDet) = affine.Forward(x);
        Assert.AreEqual(location[0] + scale[0], y[0, 0].item<double>(), 1e-15);
        Assert.AreEqual(location[1] - 2 * scale[1], y[0, 1].item<double>(), 1e-14);
        Assert.AreEqual(Math.Log(scale[0]) + Math.Log(scale[1]), logDet.item<double>(), 1e-13);
        var (back, inverseLogDet) = affine.Inverse(y);
        Assert.AreEqual(0, (back - x).abs().max().item<double>(), 1e-9);
        Assert.AreEqual(-logDet.item<double>(), inverseLogDet.item<double>(), 1e-13);
        // And float32 inputs get float32 outputs.
        Assert.AreEqual(ScalarType.Float32, affine.Forward(x.to(ScalarType.Float32)).Output.dtype);
    }
}
