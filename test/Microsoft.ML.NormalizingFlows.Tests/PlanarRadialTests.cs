namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class PlanarRadialTests
{
    public static IEnumerable<object[]> Dimensions => new[] { new object[] { 1 }, new object[] { 2 }, new object[] { 5 }, new object[] { 16 } };

    private static PlanarFlow Planar(int d, int k, long seed, bool fused, PlanarConstraint constraint = PlanarConstraint.IdentityWhereSlack)
    {
        // Large init scale: random, far-from-identity parameters (some wᵀu < −1, exercising the constraint).
        var flow = new PlanarFlow(d, k, initScale: 1.0, generator: new Generator((ulong)seed), constraint: constraint);
        flow.DisableFusedKernel = !fused;
        flow.to(ScalarType.Float64);
        return flow;
    }

    [TestMethod]
    [DynamicData(nameof(Dimensions))]
    public void PlanarLogDetMatchesAutogradJacobian(int d)
    {
        foreach (var constraint in Enum.GetValues<PlanarConstraint>())
            foreach (bool fused in new[] { true, false })
            {
                var flow = Planar(d, 6, seed: 10 + d, fused, constraint);
                var x = torch.randn(64, d, dtype: ScalarType.Float64, generator: new Generator(7)) * 2;
                AssertLogDetMatchesAutograd(flow, x, label: $"planar {constraint} fused={fused} d={d}");
            }
    }

    [TestMethod]
    [DynamicData(nameof(Dimensions))]
    public void RadialLogDetMatchesAutogradJacobian(int d)
    {
        var flow = new RadialFlow(d, 5, initScale: 1.0, generator: new Generator((ulong)(20 + d)));
        flow.to(ScalarType.Float64);
        var x = torch.randn(64, d, dtype: ScalarType.Float64, generator: new Generator(8)) * 2;
        AssertLogDetMatchesAutograd(flow, x);
    }

    [TestMethod]
    [DynamicData(nameof(Dimensions))]
    public void InversesRoundTrip(int d)
    {
        var x64 = torch.randn(128, d, dtype: ScalarType.Float64, generator: new Generator(9)) * 2;
        AssertRoundTrip(Planar(d, 8, 30 + d, fused: true), x64, 1e-10);
        AssertRoundTrip(Planar(d, 8, 35 + d, fused: true, PlanarConstraint.Softplus), x64, 1e-10);
        var radial = new RadialFlow(d, 8, initScale: 1.0, generator: new Generator((ulong)(40 + d)));
        radial.to(ScalarType.Float64);
        AssertRoundTrip(radial, x64, 1e-10);

        // Float32: the forward's own rounding is amplified by the flow's conditioning, so use moderate
        // parameters (scale 0.5) as a trained flow has; the float64 checks above use extreme ones.
        var x32 = x64.to(ScalarType.Float32);
        AssertRoundTrip(new PlanarFlow(d, 8, initScale: 0.5, generator: new Generator((ulong)(50 + d))), x32, 1e-5);
        AssertRoundTrip(new RadialFlow(d, 8, initScale: 0.5, generator: new Generator((ulong)(60 + d))), x32, 1e-5);
    }

    /// <summary>The fused CPU kernel's hand-written backward must equal autograd through the op-by-op path.</summary>
    [TestMethod]
    [DynamicData(nameof(Dimensions))]
    public void FusedPlanarKernelMatchesOperationPathIncludingGradients(int d)
    {
        var x = torch.randn(50, d, dtype: ScalarType.Float64, generator: new Generator(11)) * 1.5;
        var weights = torch.randn(50, d, dtype: ScalarType.Float64, generator: new Generator(12));
        var logDetWeights = torch.randn(50, dtype: ScalarType.Float64, generator: new Generator(13));
        foreach (var constraint in Enum.GetValues<PlanarConstraint>())
            AssertFusedMatchesOperations(d, constraint, x, weights, logDetWeights);
    }

    private static void AssertFusedMatchesOperations(int d, PlanarConstraint constraint, Tensor x, Tensor weights, Tensor logDetWeights)
    {
        (Tensor Z, Tensor L, Tensor[] Grads) Run(bool fused)
        {
            var flow = Planar(d, 7, seed: 99, fused, constraint);
            var input = x.clone().requires_grad_(true);
            var (z, l) = flow.Forward(input);
            var loss = (z * weights).sum() + (l * logDetWeights).sum();
            loss.backward();
            var grads = flow.parameters().Select(p => p.grad!.clone()).Append(input.grad!.clone()).ToArray();
            return (z.detach(), l.detach(), grads);
        }
        var fusedRun = Run(true);
        var opRun = Run(false);
        Assert.IsTrue((fusedRun.Z - opRun.Z).abs().max().ToDouble() < 1e-12, $"{constraint}: outputs differ");
        Assert.IsTrue((fusedRun.L - opRun.L).abs().max().ToDouble() < 1e-12, $"{constraint}: log-determinants differ");
        for (int i = 0; i < fusedRun.Grads.Length; i++)
        {
            double err = (fusedRun.Grads[i] - opRun.Grads[i]).abs().max().ToDouble();
            Assert.IsTrue(err < 1e-10, $"{constraint}: gradient {i} differs by {err:E2}");
        }
    }

    /// <summary>The compiled pass that also carries the score gives the same sample, log det and gradients as without it,
    /// and the same score as the tensor-operation path.</summary>
    [TestMethod]
    [DataRow(PlanarConstraint.IdentityWhereSlack)]
    [DataRow(PlanarConstraint.Softplus)]
    public void FusedForwardWithScoreMatchesForwardAndTheOperationPathScore(PlanarConstraint constraint)
    {
        var x = torch.randn(40, 3, dtype: ScalarType.Float64, generator: new Generator(21)) * 1.5;
        var inputScore = torch.randn(40, 3, dtype: ScalarType.Float64, generator: new Generator(22));
        var fused = Planar(3, 9, seed: 23, fused: true, constraint);
        var operations = Planar(3, 9, seed: 23, fused: false, constraint);
        var (z, logDet, score) = fused.ForwardWithScore(x, inputScore);
        var (zRef, logDetRef) = operations.Forward(x);
        AssertClose(zRef, z, 1e-12, "sample");
        AssertClose(logDetRef, logDet, 1e-12, "log det");
        AssertClose(operations.PushScore(x, inputScore)!, score!, 1e-10, "score");
        Assert.IsFalse(score!.requires_grad, "the score is not differentiable");
        (z.sum() + logDet.sum()).backward();
        (zRef.sum() + logDetRef.sum()).backward();
        foreach (var (a, b) in fused.parameters().Zip(operations.parameters()))
            AssertClose(b.grad!, a.grad!, 1e-10, "gradient with the score output");
    }

    [TestMethod]
    [DataRow(PlanarConstraint.IdentityWhereSlack)]
    [DataRow(PlanarConstraint.Softplus)]
    public void ConstrainedPlanarLayersStayInvertibleWhenRawUViolatesTheCondition(PlanarConstraint constraint)
    {
        // Make wᵀu very negative (−15): the raw layer would fold space; û must keep det J > 0 everywhere, in float32.
        var flow = new PlanarFlow(2, 1, generator: new Generator(1), constraint: constraint);
        using (torch.no_grad())
        {
            flow.parameters().ElementAt(0).copy_(torch.tensor(new float[] { 3, 0 }).reshape(1, 2));
            flow.parameters().ElementAt(1).copy_(torch.tensor(new float[] { -5, 0 }).reshape(1, 2));
            flow.parameters().ElementAt(2).zero_();
        }
        var x = torch.linspace(-5, 5, 201).unsqueeze(1).repeat(1, 2);
        var (_, logDet) = flow.Forward(x);
        Assert.IsTrue(logDet.isfinite().all().item<bool>(), "log|det J| must be finite (det > 0) for every input");
        var (back, _) = flow.Inverse(flow.Forward(x).Output);
        Assert.IsTrue(back.isfinite().all().item<bool>());
    }

    [TestMethod]
    public void BadArgumentsAreRejected()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new PlanarFlow(2, 0));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new RadialFlow(2, -1));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new PlanarFlow(0, 3));
        var e = Assert.ThrowsExactly<ArgumentException>(() => new PlanarFlow(3, 2).Forward(torch.zeros(4, 2)));
        StringAssert.Contains(e.Message, "[B, 3]");
    }
}
