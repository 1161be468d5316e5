using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class SmokeTests
{
    [TestMethod]
    public void TorchSharpLoadsAndRingTargetEvaluates()
    {
        var ring = TargetGallery.Create("ring");
        var value = ring.Evaluate(torch.tensor(new float[] { 4, 0 }).reshape(1, 2));
        Assert.AreEqual(1L, value.shape[0]);
        Assert.IsTrue(float.IsFinite(value.item<float>()));
    }
}
