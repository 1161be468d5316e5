using Microsoft.ML.NormalizingFlows.Sequential;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Microsoft.ML.NormalizingFlows.Tests.Sequential.SequentialReferences;

namespace Microsoft.ML.NormalizingFlows.Tests.Sequential;

/// <summary>
/// The device path's scans (the chunked linear-recurrence scan, log-semiring products) against the step-by-step loops,
/// their operation counts, and argument checks. The recurrence's and the HMM's value and gradient tests run per
/// implementation (LinearRecurrenceTests, HiddenMarkovModelTests).
/// </summary>
[TestClass]
public sealed class ParallelScanTests
{
    [TestMethod]
    public void TheScansOperationCountGrowsWithLevelsNotSteps()
    {
        // Forward and backward of one scan: a few whole-tensor operations per level of chunks (16 steps each), whatever T.
        // A loop would create about 3 tensors per step, i.e. thousands here.
        var statistics = TorchSharp.DisposeScopeManager.Statistics;
        long Created(long steps, bool constant)
        {
            var a = (constant ? torch.full(4, 1, 0.9, ScalarType.Float64) : Random(17, 4, steps).tanh()).requires_grad_();
            var b = Random(18, 4, steps).requires_grad_();
            long before = statistics.CreatedInScopeCount + statistics.CreatedOutsideScopeCount;
            using (var scope = torch.NewDisposeScope())
                (LinearRecurrence.Scan(a, b, torch.zeros(4, dtype: ScalarType.Float64), LinearRecurrence.Algorithm.ChunkedScan) * 1.5).sum().backward();
            return statistics.CreatedInScopeCount + statistics.CreatedOutsideScopeCount - before;
        }
        foreach (bool constant in new[] { true, false })
        {
            long shortSeries = Created(200, constant), longSeries = Created(4_000, constant); // 2 and 3 levels
            // Measured 2026-11-30: 81 → 109 tensors (constant a) and 79 → 105 (time-varying a).
            Assert.IsTrue(longSeries <= 125, $"constant {constant}: {longSeries} tensors for T = 4,000 (budget 125)");
            Assert.IsTrue(longSeries >= 60, $"constant {constant}: {longSeries} tensors: the count no longer measures the scan");
            Assert.IsTrue(longSeries - shortSeries <= 35, $"constant {constant}: one more level cost {longSeries - shortSeries} tensors");
        }
    }

    [TestMethod]
    public void TheCpuPassesCostTheSameTensorOperationsWhateverT()
    {
        // CPU tensors take the compiled sequential passes: a fixed handful of tensor operations (conversions, outputs,
        // gradients) around one loop, so a longer series adds arithmetic, not operations that each pay TorchSharp's
        // per-call cost. A regression to tensor code per step (or per level) would grow with T.
        var statistics = TorchSharp.DisposeScopeManager.Statistics;
        long Created(Action pass)
        {
            long before = statistics.CreatedInScopeCount + statistics.CreatedOutsideScopeCount;
            using (var scope = torch.NewDisposeScope()) pass();
            return statistics.CreatedInScopeCount + statistics.CreatedOutsideScopeCount - before;
        }
        long Recurrence(long steps) => Created(() =>
        {
            var a = Random(40, 4, steps).tanh().requires_grad_();
            var b = Random(41, 4, steps).requires_grad_();
            (LinearRecurrence.Scan(a, b, torch.zeros(4, dtype: ScalarType.Float64)) * 1.5).sum().backward();
        });
        long Hmm(long steps) => Created(() =>
        {
            var logTransition = torch.nn.functional.log_softmax(Random(42, 4, 3, 3), -1).detach().requires_grad_();
            var logEmission = Random(43, 4, steps, 3).requires_grad_();
            HiddenMarkovModel.LogLikelihood(torch.full(3, -Math.Log(3), ScalarType.Float64), logTransition, logEmission).sum().backward();
        });
        foreach (var (name, count) in new (string, Func<long, long>)[] { ("recurrence", Recurrence), ("HMM", Hmm) })
        {
            long shortSeries = count(50), longSeries = count(5_000);
            Assert.AreEqual(shortSeries, longSeries, $"{name}: {shortSeries} tensors at T = 50, {longSeries} at T = 5,000");
            Assert.IsTrue(longSeries <= 60, $"{name}: {longSeries} tensors for one forward and backward pass (budget 60)");
        }
    }

    [TestMethod]
    [DataRow(1L, 2L)]
    [DataRow(3L, 3L)]
    [DataRow(7L, 4L)]
    [DataRow(64L, 2L)]
    public void LogSemiringReduceAndScanEqualTheSequentialProducts(long steps, long states)
    {
        var chain = Random(6, 2, steps, states, states).requires_grad_();
        var prefixes = new List<torch.Tensor> { chain.select(1, 0) };
        for (long t = 1; t < steps; t++) prefixes.Add(LogSemiring.Multiply(prefixes[^1], chain.select(1, t)));
        var looped = torch.stack(prefixes, 1);
        var scanned = LogSemiring.Scan(chain);
        AssertCloseRelative(looped, scanned, 1e-10, "prefixes");
        var reduced = LogSemiring.Reduce(chain);
        AssertCloseRelative(looped.select(1, steps - 1), reduced, 1e-10, "whole product");
        var gradLoop = torch.autograd.grad(new[] { looped.select(1, steps - 1).sum() }, new[] { chain })[0];
        var gradTree = torch.autograd.grad(new[] { reduced.sum() }, new[] { chain })[0];
        AssertCloseRelative(gradLoop, gradTree, 1e-10, "gradient");
        // ⊗ itself against its definition.
        var x = Random(7, states, states);
        var y = Random(8, states, states);
        var direct = torch.log(torch.exp(x).matmul(torch.exp(y)));
        AssertCloseRelative(direct, LogSemiring.Multiply(x, y), 1e-12, "X ⊗ Y = log(exp X · exp Y)");
    }

    [TestMethod]
    public void IntegerInputsAreRefusedByNameAndMixedPrecisionPromotes()
    {
        var ints = torch.ones(2, 5, dtype: ScalarType.Int64);
        var reals = torch.full(2, 5, 0.5, ScalarType.Float64);
        Assert.AreEqual("a", Assert.ThrowsExactly<ArgumentException>(() => LinearRecurrence.Scan(ints, reals)).ParamName);
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => LinearRecurrence.Scan(reals, ints)).Message, "b must be a floating-point tensor; got Int64");
        Assert.AreEqual("initial", Assert.ThrowsExactly<ArgumentException>(() => LinearRecurrence.Scan(reals, reals, torch.zeros(2, dtype: ScalarType.Int32))).ParamName);
        Assert.AreEqual("logTransition", Assert.ThrowsExactly<ArgumentException>(() =>
            HiddenMarkovModel.LogLikelihood(torch.zeros(2), torch.zeros(2, 2, dtype: ScalarType.Int64), torch.zeros(5, 2))).ParamName);

        // A float32 coefficient far below 1e-16 against float64 offsets: computed as the loop would, in float64, finite.
        var tiny = torch.full(2, 1, 1e-20f, ScalarType.Float32);
        var b = Random(30, 2, 40);
        var scanned = LinearRecurrence.Scan(tiny, b);
        Assert.AreEqual(ScalarType.Float64, scanned.dtype);
        AssertCloseRelative(RecurrenceLoop(tiny.to_type(ScalarType.Float64).expand(2, 40), b, null), scanned, 1e-10, "mixed precision");
    }

    [TestMethod]
    public void MismatchedShapesNameTheArgument()
    {
        Assert.AreEqual("chain", Assert.ThrowsExactly<ArgumentException>(() => LogSemiring.Reduce(torch.zeros(4, 2, 3))).ParamName);
        Assert.AreEqual("y", Assert.ThrowsExactly<ArgumentException>(() => LogSemiring.Multiply(torch.zeros(2, 3), torch.zeros(2, 3))).ParamName);
        Assert.AreEqual("logTransition", Assert.ThrowsExactly<ArgumentException>(() =>
            HiddenMarkovModel.LogLikelihood(torch.zeros(3), torch.zeros(2, 2), torch.zeros(10, 3))).ParamName);
        Assert.AreEqual("logInitial", Assert.ThrowsExactly<ArgumentException>(() =>
            HiddenMarkovModel.LogLikelihood(torch.tensor(0.0), torch.zeros(1, 1), torch.zeros(10, 1))).ParamName);
        Assert.AreEqual("initial", Assert.ThrowsExactly<ArgumentException>(() =>
            LinearRecurrence.Scan(torch.ones(3, 5), torch.ones(3, 5), torch.zeros(4))).ParamName);
        Assert.AreEqual("logEmission", Assert.ThrowsExactly<ArgumentException>(() =>
            HiddenMarkovModel.LogLikelihood(torch.zeros(3), torch.zeros(3, 3), torch.zeros(10, 2))).ParamName);
    }
}
