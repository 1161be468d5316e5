using Microsoft.ML.NormalizingFlows.Training.Optimizers;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Training;

/// <summary>The library's optimizers (written to avoid TorchSharp's temporary Scalars) step exactly like TorchSharp's.</summary>
[TestClass]
public sealed class OptimizerTests
{
    [TestMethod]
    [DataRow(OptimizerKind.Adam)]
    [DataRow(OptimizerKind.RMSprop)]
    public void StepsMatchTorchSharpsOptimizerBitForBit(OptimizerKind kind)
    {
        var ours = FlowFactory.Create("realnvp", 3, 2, seed: 4);
        var theirs = FlowFactory.Create("realnvp", 3, 2, seed: 4);
        var target = Target.FromDelegate("normal", 3, z => (z * z).sum(1).mul(-0.5));
        using var mine = FlowOptimizer.Create(ours.parameters(), kind, 0.01);
        using var reference = kind == OptimizerKind.Adam ? (optim.Optimizer)optim.Adam(theirs.parameters(), 0.01) : optim.RMSProp(theirs.parameters(), 0.01);
        for (int step = 0; step < 25; step++)
        {
            double rate = 0.01 * Math.Pow(0.97, step); // a changing rate, as schedules set it
            mine.LearningRate = rate;
            foreach (var group in reference.ParamGroups) group.LearningRate = rate;
            foreach (var (q, optimizer) in new (FlowDistribution, Action)[] { (ours, mine.Step), (theirs, () => reference.step()) })
            {
                using var scope = torch.NewDisposeScope();
                var (z, logQ) = q.Sample(32, new Generator((ulong)step));
                (logQ - target.Evaluate(z)).mean().backward();
                optimizer();
            }
            mine.ZeroGrad();
            reference.zero_grad();
        }
        foreach (var (a, b) in ours.parameters().Zip(theirs.parameters()))
            Assert.AreEqual(0f, (a - b).abs().max().item<float>(), "parameters differ");
    }

    [TestMethod]
    public void AnOptimizerNeedsParameters()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => FlowOptimizer.Create(Array.Empty<TorchSharp.Modules.Parameter>(), OptimizerKind.Adam, 0.1));
        Assert.AreEqual("parameters", e.ParamName);
    }
}
