using Microsoft.ML.NormalizingFlows.Sequential;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Sequential;

/// <summary>The parallel scans equal the step-by-step loops they replace, in value and gradient (float64, 1e-10).</summary>
[TestClass]
public sealed class ParallelScanTests
{
    private static torch.Tensor Random(long seed, params long[] shape) =>
        torch.randn(shape, dtype: ScalarType.Float64, generator: new torch.Generator((ulong)seed));

    private static torch.Tensor SequentialRecurrence(torch.Tensor a, torch.Tensor b, torch.Tensor? initial)
    {
        long steps = b.shape[^1];
        var x = initial ?? torch.zeros(b.shape[..^1], dtype: b.dtype);
        var values = new List<torch.Tensor>();
        for (long t = 0; t < steps; t++)
        {
            x = a.select(-1, t) * x + b.select(-1, t);
            values.Add(x);
        }
        return torch.stack(values, -1);
    }

    /// <summary>The HMM forward algorithm step by step in log space (the reference the tree is held to).</summary>
    private static torch.Tensor ForwardLoop(torch.Tensor logInitial, torch.Tensor logTransition, torch.Tensor logEmission)
    {
        var alpha = logInitial + logEmission.select(-2, 0);
        for (long t = 1; t < logEmission.shape[^2]; t++) alpha = torch.logsumexp(alpha.unsqueeze(-1) + logTransition, -2) + logEmission.select(-2, t);
        return torch.logsumexp(alpha, -1);
    }

    /// <summary>The scan against the loop, in value and in the gradients of (x · w).sum() with respect to a, b and x_0
    /// (the loop may take broadcast copies of a and x_0; the gradients must still reach the originals).</summary>
    private static void AssertScanEqualsLoop(torch.Tensor a, torch.Tensor b, torch.Tensor x0, torch.Tensor w, torch.Tensor? loopA = null, torch.Tensor? loopX0 = null)
    {
        var scanned = LinearRecurrence.Scan(a, b, x0);
        var looped = SequentialRecurrence(loopA ?? a, b, loopX0 ?? x0);
        AssertClose(looped, scanned, 1e-10, "x_t");
        var gradScan = torch.autograd.grad(new[] { (scanned * w).sum() }, new[] { a, b, x0 });
        var gradLoop = torch.autograd.grad(new[] { (looped * w).sum() }, new[] { a, b, x0 });
        for (int i = 0; i < 3; i++) AssertClose(gradLoop[i], gradScan[i], 1e-10, $"gradient {i}");
    }

    private static void AssertClose(torch.Tensor expected, torch.Tensor actual, double tolerance, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, what + ": shape");
        double scale = Math.Max(1, expected.abs().max().item<double>());
        double gap = (expected - actual).abs().max().item<double>();
        Assert.IsTrue(gap <= tolerance * scale, $"{what}: largest difference {gap:E2} (scale {scale:E2})");
    }

    [TestMethod]
    [DataRow(1L)]
    [DataRow(2L)]
    [DataRow(7L)]
    [DataRow(64L)]
    [DataRow(1_000L)]
    public void TheLinearRecurrenceScanEqualsTheLoopInValueAndGradient(long steps)
    {
        var a = (Random(1, 3, steps).tanh() * 0.99).requires_grad_(); // |a| < 1, as in a stationary AR or GARCH recursion
        var b = Random(2, 3, steps).requires_grad_();
        var x0 = Random(3, 3).requires_grad_();
        var w = Random(4, 3, steps);
        AssertScanEqualsLoop(a, b, x0, w);
    }

    [TestMethod]
    [DataRow(1L)]
    [DataRow(5L)]
    [DataRow(32L)]
    [DataRow(33L)]
    [DataRow(1_000L)]
    [DataRow(2_100L)]
    public void AConstantCoefficientTakesTheChunkedPathAndStillEqualsTheLoop(long steps)
    {
        // One coefficient per series ([4, 1]), including a zero and a negative one, which the chunk products' reciprocals
        // would break unguarded; 2,100 steps need three levels of chunks (132 chunks of 16, then 9).
        var a = torch.tensor(new[] { 0.97, -0.6, 0.0, 0.3 }, ScalarType.Float64).unsqueeze(1).requires_grad_();
        var b = Random(6, 4, steps).requires_grad_();
        var x0 = Random(7, 4).requires_grad_();
        var w = Random(8, 4, steps);
        AssertScanEqualsLoop(a, b, x0, w, loopA: a.expand(4, steps));
        // Without x_0, and with a shared across a batch of draws by broadcasting ([1] against [2, 4, T]).
        var shared = torch.tensor(new[] { 0.8 }, ScalarType.Float64);
        var batch = Random(9, 2, 4, steps);
        AssertClose(SequentialRecurrence(shared.expand(2, 4, steps), batch, null), LinearRecurrence.Scan(shared, batch), 1e-10, "shared a, x_0 = 0");
    }

    [TestMethod]
    public void TimeVaryingCoefficientsWithZerosAndGrowthStillEqualTheLoop()
    {
        // Exact zeros (a reset), a stretch with |a| > 1 (growth) and tiny coefficients, in one series of 300 steps.
        long steps = 300;
        var values = new double[3 * steps];
        var random = new Random(11);
        for (int i = 0; i < values.Length; i++)
            values[i] = (i % 37) switch { 0 => 0.0, 1 => -0.0, 2 => 1e-20, 3 => -3e-17, _ => (i / 100) % 3 == 1 ? 1.02 + 0.05 * random.NextDouble() : 1.6 * random.NextDouble() - 0.8 };
        var a = torch.tensor(values, ScalarType.Float64).reshape(3, steps).requires_grad_();
        var b = Random(12, 3, steps).requires_grad_();
        var x0 = Random(13, 3).requires_grad_();
        var w = Random(14, 3, steps);
        AssertScanEqualsLoop(a, b, x0, w);
    }

    [TestMethod]
    public void GradientsReachBroadcastInputsAndFloat32StaysFloat32()
    {
        // A coefficient shared by every series ([1]), an initial value shared too ([]), offsets [2, 3, T]: autograd sums
        // the per-series gradients back to the inputs' shapes.
        long steps = 50;
        var a = torch.tensor(new[] { 0.9 }, ScalarType.Float64).requires_grad_();
        var x0 = torch.tensor(0.5, ScalarType.Float64).requires_grad_();
        var b = Random(15, 2, 3, steps).requires_grad_();
        var w = Random(16, 2, 3, steps);
        AssertScanEqualsLoop(a, b, x0, w, loopA: a.expand(2, 3, steps), loopX0: x0.expand(2, 3));
        var looped = SequentialRecurrence(a.expand(2, 3, steps), b, x0.expand(2, 3)).detach();

        var single = LinearRecurrence.Scan(a.detach().to_type(ScalarType.Float32), b.detach().to_type(ScalarType.Float32), x0.detach().to_type(ScalarType.Float32));
        Assert.AreEqual(ScalarType.Float32, single.dtype);
        AssertClose(looped, single.to_type(ScalarType.Float64), 1e-5, "float32 x_t");
    }

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
                (LinearRecurrence.Scan(a, b, torch.zeros(4, dtype: ScalarType.Float64)) * 1.5).sum().backward();
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
    public void TheLinearRecurrenceBroadcastsACoefficientPerSeriesAndStartsAtZeroByDefault()
    {
        var a = torch.tensor(new[] { 0.5, -0.25 }, ScalarType.Float64).unsqueeze(1); // one coefficient per series, [2, 1]
        var b = Random(5, 2, 9);
        AssertClose(SequentialRecurrence(a.expand(2, 9), b, null), LinearRecurrence.Scan(a, b), 1e-12, "broadcast a, x_0 = 0");
        var e = Assert.ThrowsExactly<ArgumentException>(() => LinearRecurrence.Scan(torch.ones(3, 5), torch.ones(2, 5)));
        Assert.AreEqual("a", e.ParamName);
        StringAssert.Contains(e.Message, "[3, 5]");
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
        AssertClose(looped, scanned, 1e-10, "prefixes");
        var reduced = LogSemiring.Reduce(chain);
        AssertClose(looped.select(1, steps - 1), reduced, 1e-10, "whole product");
        var gradLoop = torch.autograd.grad(new[] { looped.select(1, steps - 1).sum() }, new[] { chain })[0];
        var gradTree = torch.autograd.grad(new[] { reduced.sum() }, new[] { chain })[0];
        AssertClose(gradLoop, gradTree, 1e-10, "gradient");
        // ⊗ itself against its definition.
        var x = Random(7, states, states);
        var y = Random(8, states, states);
        var direct = torch.log(torch.exp(x).matmul(torch.exp(y)));
        AssertClose(direct, LogSemiring.Multiply(x, y), 1e-12, "X ⊗ Y = log(exp X · exp Y)");
    }

    [TestMethod]
    public void TheHmmLikelihoodEqualsEnumerationOverPathsAndTheForwardLoop()
    {
        const int states = 3, steps = 5;
        var logInitial = torch.nn.functional.log_softmax(Random(9, states), 0);
        var logTransition = torch.nn.functional.log_softmax(Random(10, states, states), 1);
        var logEmission = Random(11, steps, states) - 1;
        // Every one of the 3⁵ state paths.
        double total = 0;
        var pi = logInitial.data<double>().ToArray();
        var transition = logTransition.data<double>().ToArray();
        var emission = logEmission.data<double>().ToArray();
        for (int path = 0; path < (int)Math.Pow(states, steps); path++)
        {
            var s = new int[steps];
            for (int t = 0, rest = path; t < steps; t++, rest /= states) s[t] = rest % states;
            double logPath = pi[s[0]] + emission[s[0]];
            for (int t = 1; t < steps; t++) logPath += transition[s[t - 1] * states + s[t]] + emission[t * states + s[t]];
            total += Math.Exp(logPath);
        }
        Assert.AreEqual(Math.Log(total), HiddenMarkovModel.LogLikelihood(logInitial, logTransition, logEmission).item<double>(), 1e-12);

        // A long series, batched over 4 parameter draws, against the forward loop, value and gradient.
        var logits = Random(12, 4, states, states).requires_grad_();
        var longEmission = (Random(13, 4, 800, states) - 2).requires_grad_();
        var a = torch.nn.functional.log_softmax(logits, -1);
        var start = torch.full(new long[] { 4, states }, -Math.Log(states), dtype: ScalarType.Float64);
        var looped = ForwardLoop(start, a, longEmission);
        var tree = HiddenMarkovModel.LogLikelihood(start, a, longEmission);
        AssertClose(looped, tree, 1e-10, "log-likelihood, T = 800");
        var gradLoop = torch.autograd.grad(new[] { looped.sum() }, new[] { logits, longEmission }, retain_graph: true); // log_softmax is shared by both graphs
        var gradTree = torch.autograd.grad(new[] { tree.sum() }, new[] { logits, longEmission });
        for (int i = 0; i < 2; i++) AssertClose(gradLoop[i], gradTree[i], 1e-10, $"gradient {i}");
    }

    [TestMethod]
    [DataRow(1L)]
    [DataRow(2L)]
    [DataRow(3L)]
    [DataRow(37L)]
    public void TheHmmGradientReachesSharedParametersAndEveryInput(long steps)
    {
        // π and A shared by every draw ([S], [S, S]) against emissions per draw [2, 3, T, S]: the posteriors the backward
        // pass forms are summed back over the draws; every input's gradient equals the loop's, down to T = 1.
        const int states = 3;
        var logInitial = torch.nn.functional.log_softmax(Random(21, states), 0).detach().requires_grad_();
        var logTransition = torch.nn.functional.log_softmax(Random(22, states, states), 1).detach().requires_grad_();
        var logEmission = (Random(23, 2, 3, steps, states) * 2).requires_grad_();
        var w = Random(24, 2, 3);
        var tree = HiddenMarkovModel.LogLikelihood(logInitial, logTransition, logEmission);
        var looped = ForwardLoop(logInitial, logTransition, logEmission);
        AssertClose(looped, tree, 1e-10, "log-likelihood");
        var inputs = new[] { logInitial, logTransition, logEmission };
        var gradTree = torch.autograd.grad(new[] { (tree * w).sum() }, inputs);
        var gradLoop = torch.autograd.grad(new[] { (looped * w).sum() }, inputs, allow_unused: true);
        for (int i = 0; i < 3; i++)
            AssertClose(gradLoop[i] is null || gradLoop[i].IsInvalid ? torch.zeros_like(inputs[i]) : gradLoop[i], gradTree[i], 1e-10, $"gradient {i}");
    }

    [TestMethod]
    public void AStateNoStateMovesToIsNotANaN()
    {
        // Column 0 of A is all log 0: state 0 can only be the first state (a start state). Its exponentials must be 0.
        var logits = Random(25, 3, 3);
        var mask = torch.tensor(new[] { 0.0, 1, 1, 0, 1, 1, 0, 1, 1 }, ScalarType.Float64).reshape(3, 3);
        var logTransition = torch.nn.functional.log_softmax(logits.masked_fill(mask.eq(0), double.NegativeInfinity), 1).detach().requires_grad_();
        var logInitial = torch.tensor(new[] { 0.0, double.NegativeInfinity, double.NegativeInfinity }, ScalarType.Float64);
        var logEmission = Random(26, 40, 3).requires_grad_();
        var tree = HiddenMarkovModel.LogLikelihood(logInitial, logTransition, logEmission);
        // The loop's own gradient is NaN here (log-sum-exp over a column of −∞), so it runs with log 0 as −1,000 instead.
        var looped = ForwardLoop(logInitial.clamp_min(-1000), logTransition.clamp_min(-1000), logEmission);
        Assert.IsTrue(tree.isfinite().item<bool>(), "finite log-likelihood");
        AssertClose(looped, tree, 1e-10, "log-likelihood");
        var gradTree = torch.autograd.grad(new[] { tree }, new[] { logEmission })[0];
        var gradLoop = torch.autograd.grad(new[] { looped }, new[] { logEmission })[0];
        AssertClose(gradLoop, gradTree, 1e-10, "gradient");
    }

    [TestMethod]
    public void TheHmmLikelihoodTakesFloat32AndNamesBatchesThatDoNotBroadcast()
    {
        var logTransition = torch.nn.functional.log_softmax(Random(27, 2, 2), 1);
        var logInitial = torch.full(2, -Math.Log(2), ScalarType.Float64);
        var logEmission = Random(28, 4, 100, 2);
        var reference = ForwardLoop(logInitial, logTransition, logEmission);
        var single = HiddenMarkovModel.LogLikelihood(logInitial.to_type(ScalarType.Float32), logTransition.to_type(ScalarType.Float32), logEmission.to_type(ScalarType.Float32));
        Assert.AreEqual(ScalarType.Float32, single.dtype);
        Assert.IsTrue((single.to_type(ScalarType.Float64) - reference).abs().max().item<double>() < 1e-3 * reference.abs().max().item<double>(), "float32 within its precision");
        var e = Assert.ThrowsExactly<ArgumentException>(() => HiddenMarkovModel.LogLikelihood(torch.zeros(3, 2), torch.zeros(2, 2), torch.zeros(4, 10, 2)));
        StringAssert.Contains(e.Message, "do not broadcast");
    }

    [TestMethod]
    public void TheHmmLikelihoodSurvivesStatesThousandsOfNatsApart()
    {
        // The scaled-probability tree flushes entries ~700 nats below their matrix's largest to 0: the likelihood and
        // its gradient must still match the log-space loop, and nothing may turn NaN.
        const int states = 3, steps = 300;
        var logTransition = torch.nn.functional.log_softmax(Random(14, states, states), 1);
        var emission = (Random(15, steps, states) * 400).requires_grad_(); // log e_t(s) spread over ±1,200 nats
        var logInitial = torch.full(new long[] { states }, -Math.Log(states), dtype: ScalarType.Float64);
        var looped = ForwardLoop(logInitial, logTransition, emission);
        var tree = HiddenMarkovModel.LogLikelihood(logInitial, logTransition, emission);
        AssertClose(looped, tree, 1e-10, "log-likelihood");
        var gradLoop = torch.autograd.grad(new[] { looped }, new[] { emission })[0];
        var gradTree = torch.autograd.grad(new[] { tree }, new[] { emission })[0];
        Assert.IsTrue(gradTree.isfinite().all().item<bool>(), "finite gradient");
        AssertClose(gradLoop, gradTree, 1e-10, "gradient");
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
        AssertClose(SequentialRecurrence(tiny.to_type(ScalarType.Float64).expand(2, 40), b, null), scanned, 1e-10, "mixed precision");
        // The HMM likewise: float32 π against float64 A and emissions gives the float64 likelihood.
        var logTransition = torch.nn.functional.log_softmax(Random(31, 2, 2), 1);
        var logEmission = Random(32, 30, 2);
        var logInitial = torch.full(2, -Math.Log(2), ScalarType.Float64);
        var mixed = HiddenMarkovModel.LogLikelihood(logInitial.to_type(ScalarType.Float32), logTransition, logEmission);
        Assert.AreEqual(ScalarType.Float64, mixed.dtype);
        AssertClose(ForwardLoop(logInitial.to_type(ScalarType.Float32).to_type(ScalarType.Float64), logTransition, logEmission), mixed, 1e-10, "mixed-precision HMM");
    }

    [TestMethod]
    [DataRow(ScalarType.Float32)]
    [DataRow(ScalarType.Float64)]
    public void AnObservationImpossibleInEveryStateGivesMinusInfinityNotNaN(ScalarType dtype)
    {
        // Series 0: its last observation has log e = −∞ in both states; series 1: every one; series 2: none. The likelihood
        // of the first two is 0 (log −∞), and the gradient stays finite (there is nothing to move probability towards).
        foreach (long steps in new[] { 1L, 2L, 5L, 40L })
        {
            var emission = torch.zeros(3, steps, 2, dtype: dtype);
            emission[0, steps - 1] = torch.full(2, double.NegativeInfinity, dtype);
            emission[1] = torch.full(steps, 2, double.NegativeInfinity, dtype);
            emission.requires_grad_();
            var logLikelihood = HiddenMarkovModel.LogLikelihood(torch.zeros(2, dtype: dtype), torch.zeros(2, 2, dtype: dtype), emission);
            var values = logLikelihood.to_type(ScalarType.Float64).data<double>().ToArray();
            Assert.IsTrue(double.IsNegativeInfinity(values[0]) && double.IsNegativeInfinity(values[1]), $"T = {steps}: {string.Join(", ", values)}");
            Assert.AreEqual(steps * Math.Log(2), values[2], 1e-5, $"T = {steps}: uniform chain, log 2 per step");
            logLikelihood.sum().backward();
            Assert.IsTrue(emission.grad!.isfinite().all().item<bool>(), $"T = {steps}: finite gradient");
        }
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
