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
    [DataRow(OptimizerKind.Adam)]
    [DataRow(OptimizerKind.RMSprop)]
    public void AMaskedStepIsTheStepWhenAcceptedAndLeavesNoTraceWhenRejected(OptimizerKind kind)
    {
        // Plain steps on one copy; on the other the same steps through the masked path, with a rejected step carrying
        // NaN gradients slipped in (and uncounted afterwards, as the trainer does when it reads the step log).
        var plain = FlowFactory.Create("realnvp", 3, 2, seed: 4);
        var masked = FlowFactory.Create("realnvp", 3, 2, seed: 4);
        var target = Target.FromDelegate("normal", 3, z => (z * z).sum(1).mul(-0.5));
        using var first = FlowOptimizer.Create(plain.parameters(), kind, 0.01);
        using var second = FlowOptimizer.Create(masked.parameters(), kind, 0.01);
        var yes = torch.tensor(true);
        var no = torch.tensor(false);
        void Backward(FlowDistribution q, int step)
        {
            using var scope = torch.NewDisposeScope();
            var (z, logQ) = q.Sample(32, new Generator((ulong)step));
            (logQ - target.Evaluate(z)).mean().backward();
        }
        for (int step = 0; step < 6; step++)
        {
            Backward(plain, step);
            first.Step();
            first.ZeroGrad();
            if (step == 2)
            {
                Backward(masked, 99);
                second.Gradients.fill_(float.NaN);
                var before = masked.parameters().Select(p => p.detach().clone()).ToArray();
                second.Step(no);
                second.ZeroGrad();
                second.Uncount(1);
                foreach (var (a, b) in masked.parameters().Zip(before))
                    Assert.AreEqual(0f, (a - b).abs().max().item<float>(), "a rejected step moved a parameter");
            }
            Backward(masked, step);
            second.Step(yes);
            second.ZeroGrad();
        }
        foreach (var (a, b) in plain.parameters().Zip(masked.parameters()))
            Assert.AreEqual(0f, (a - b).abs().max().item<float>(), "accepted masked steps differ from plain ones, or the rejected step left state behind");
    }

    /// <summary>
    /// The compiled CPU update (decision, clipping and update in one pass) against the tensor-operation path other devices
    /// take: the same parameters after accepted, clipped and rejected steps (a NaN gradient, then a NaN value), the same
    /// max |g|, in both precisions.
    /// </summary>
    [TestMethod]
    [DataRow(OptimizerKind.Adam, ScalarType.Float64)]
    [DataRow(OptimizerKind.Adam, ScalarType.Float32)]
    [DataRow(OptimizerKind.RMSprop, ScalarType.Float64)]
    [DataRow(OptimizerKind.RMSprop, ScalarType.Float32)]
    public void TheCompiledCpuStepMatchesTheTensorPath(OptimizerKind kind, ScalarType dtype)
    {
        var target = Target.FromDelegate("normal", 3, z => (z * z).sum(1).mul(-0.5));
        var onHost = FlowFactory.Create("realnvp", 3, 2, seed: 4);
        var byOperations = FlowFactory.Create("realnvp", 3, 2, seed: 4);
        onHost.to(dtype);
        byOperations.to(dtype);
        using var host = FlowOptimizer.Create(onHost.parameters(), kind, 0.01);
        using var device = FlowOptimizer.Create(byOperations.parameters(), kind, 0.01);
        device.UpdateOnHostWhereCpu = false;
        double tolerance = dtype == ScalarType.Float64 ? 1e-12 : 1e-4; // float32: the two orders of rounding drift apart through the flow
        for (int step = 0; step < 12; step++)
        {
            var largest = new double[2];
            int i = 0;
            foreach (var (q, optimizer) in new[] { (onHost, host), (byOperations, device) })
            {
                using var scope = torch.NewDisposeScope();
                var (z, logQ) = q.Sample(32, new Generator((ulong)step));
                var loss = (logQ - target.Evaluate(z)).mean();
                loss.backward();
                if (step == 4) optimizer.Gradients[3] = double.NaN;
                var value = step == 7 ? torch.tensor(double.NaN, dtype: dtype) : loss.detach();
                largest[i++] = optimizer.StepIfFinite(value, clipNorm: step % 3 == 0 ? 0.05 : null).ToDouble();
                optimizer.ZeroGrad();
                if (step is 4 or 7) optimizer.Uncount(1);
            }
            if (step == 4) Assert.IsTrue(double.IsNaN(largest[0]) && double.IsNaN(largest[1]), "a NaN gradient shows in max |g|");
            else Assert.AreEqual(largest[1], largest[0], tolerance * Math.Max(1, largest[1]), $"max |g| at step {step}");
            foreach (var (a, b) in onHost.parameters().Zip(byOperations.parameters()))
                AssertClose(b, a, tolerance, $"{kind} {dtype}, after step {step}");
        }
        Assert.IsTrue(onHost.parameters().All(p => p.isfinite().all().item<bool>()), "the rejected steps left no NaN behind");
    }

    [TestMethod]
    public void ParametersAreSeatedInOneBufferThatGradientsAccumulateInto()
    {
        var q = FlowFactory.Create("realnvp", 3, 2, seed: 4);
        var parameters = q.parameters().ToArray();
        using var optimizer = FlowOptimizer.Create(parameters, OptimizerKind.Adam, 0.01);
        Assert.AreEqual(parameters.Sum(p => p.numel()), optimizer.Gradients.numel());
        var (z, logQ) = q.Sample(16, new Generator(1));
        logQ.mean().backward();
        double perParameter = parameters.Sum(p => p.grad!.abs().sum().item<float>());
        Assert.IsTrue(perParameter > 0);
        Assert.AreEqual(perParameter, optimizer.Gradients.abs().sum().item<float>(), 1e-3 * perParameter, "the buffer is the gradients");
        optimizer.ZeroGrad();
        Assert.IsTrue(parameters.All(p => p.grad!.abs().sum().item<float>() == 0), "zeroing the buffer zeroes every gradient");
    }

    [TestMethod]
    public void AnOptimizerNeedsParameters()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => FlowOptimizer.Create(Array.Empty<TorchSharp.Modules.Parameter>(), OptimizerKind.Adam, 0.1));
        Assert.AreEqual("parameters", e.ParamName);
    }
}
