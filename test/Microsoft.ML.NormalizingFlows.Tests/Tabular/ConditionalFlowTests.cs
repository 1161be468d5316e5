using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Transforms;
using static Microsoft.ML.NormalizingFlows.Tests.FlowTestHelpers;

namespace Microsoft.ML.NormalizingFlows.Tests.Tabular;

[TestClass]
public class ConditionalFlowTests
{
    [TestMethod]
    [DataRow(3, 2, DisplayName = "d = 3 with a 2-wide context")]
    [DataRow(1, 3, DisplayName = "d = 1: driven by the context alone")]
    [DataRow(4, 0, DisplayName = "no context")]
    public void ConditionalCouplingLogDetMatchesAutogradAndInverts(int d, int c)
    {
        var mask = d == 1 ? new[] { false } : Enumerable.Range(0, d).Select(i => i % 2 == 0).ToArray();
        var layer = new ConditionalCouplingTransform(d, c, mask, new RationalQuadraticSplineMap(6, 4), 16, 1, identityInit: false, new Generator(3));
        layer.to(ScalarType.Float64);
        Perturb(layer, 0.3, 5);
        var x = torch.randn(new long[] { 7, d }, dtype: ScalarType.Float64, generator: new Generator(11)).mul(2);
        Tensor? context = c == 0 ? null : torch.randn(new long[] { 7, c }, dtype: ScalarType.Float64, generator: new Generator(12));
        var (_, reported) = layer.Forward(x, context);
        AssertClose(AutogradLogAbsDet(z => layer.Forward(z, context).Output, x), reported.detach(), 1e-8, "forward log|det J|");
        var y = layer.Forward(x, context).Output.detach();
        var (back, inverseLogDet) = layer.Inverse(y, context);
        AssertClose(x, back.detach(), 1e-9, "round trip");
        AssertClose(AutogradLogAbsDet(z => layer.Inverse(z, context).Output, y), inverseLogDet.detach(), 1e-8, "inverse log|det J|");
    }

    [TestMethod]
    public void TheContextChangesTheMapAndTheDensityIntegratesToOne()
    {
        var flow = new ConditionalFlowDistribution(1, 1, new ConditionalFlowSettings(Layers: 2, Hidden: 8, Blocks: 1, Bins: 4, Bound: 4), seed: 2);
        flow.to(ScalarType.Float64);
        Perturb(flow, 0.1, 9);
        using var noGrad = torch.no_grad();
        var grid = torch.linspace(-40, 40, 80001, dtype: ScalarType.Float64).unsqueeze(1);
        foreach (double c in new[] { -1.0, 2.0 })
        {
            var context = torch.full(new long[] { 80001, 1 }, c, dtype: ScalarType.Float64);
            double mass = flow.LogProb(grid, context).exp().sum().item<double>() * (80.0 / 80000);
            Assert.AreEqual(1.0, mass, 2e-3, $"∫ q(x | c = {c}) dx");
        }
        var a = flow.LogProb(grid[40000..40005], torch.full(new long[] { 5, 1 }, -1.0, dtype: ScalarType.Float64));
        var b = flow.LogProb(grid[40000..40005], torch.full(new long[] { 5, 1 }, 2.0, dtype: ScalarType.Float64));
        Assert.IsTrue((a - b).abs().max().item<double>() > 1e-3, "the context must change q");
    }

    [TestMethod]
    public void AContextOfTheWrongShapeIsNamed()
    {
        var flow = new ConditionalFlowDistribution(2, 3, new ConditionalFlowSettings(Layers: 1, Hidden: 4));
        var x = torch.zeros(5, 2);
        var e = Assert.ThrowsExactly<ArgumentException>(() => flow.LogProb(x, torch.zeros(5, 2)));
        StringAssert.Contains(e.Message, "[5, 3]");
        Assert.ThrowsExactly<ArgumentNullException>(() => flow.LogProb(x, null));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ConditionalFlowSettings(Layers: 0).Validate());
    }
}
