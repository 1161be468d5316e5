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
        var scanned = LinearRecurrence.Scan(a, b, x0);
        var looped = SequentialRecurrence(a, b, x0);
        AssertClose(looped, scanned, 1e-10, "x_t");
        var gradScan = torch.autograd.grad(new[] { (scanned * w).sum() }, new[] { a, b, x0 });
        var gradLoop = torch.autograd.grad(new[] { (looped * w).sum() }, new[] { a, b, x0 });
        for (int i = 0; i < 3; i++) AssertClose(gradLoop[i], gradScan[i], 1e-10, $"gradient {i}");
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
        // One coefficient per series ([4, 1]), including a zero and a negative one, which powers by division would break;
        // 2,100 steps need two levels of chunks (66 chunks of 32, then 3).
        var a = torch.tensor(new[] { 0.97, -0.6, 0.0, 0.3 }, ScalarType.Float64).unsqueeze(1).requires_grad_();
        var b = Random(6, 4, steps).requires_grad_();
        var x0 = Random(7, 4).requires_grad_();
        var w = Random(8, 4, steps);
        var scanned = LinearRecurrence.Scan(a, b, x0);
        var looped = SequentialRecurrence(a.expand(4, steps), b, x0);
        AssertClose(looped, scanned, 1e-10, "x_t");
        var gradScan = torch.autograd.grad(new[] { (scanned * w).sum() }, new[] { a, b, x0 });
        var gradLoop = torch.autograd.grad(new[] { (looped * w).sum() }, new[] { a, b, x0 });
        for (int i = 0; i < 3; i++) AssertClose(gradLoop[i], gradScan[i], 1e-10, $"gradient {i}");
        // Without x_0, and with a shared across a batch of draws by broadcasting ([1] against [2, 4, T]).
        var shared = torch.tensor(new[] { 0.8 }, ScalarType.Float64);
        var batch = Random(9, 2, 4, steps);
        AssertClose(SequentialRecurrence(shared.expand(2, 4, steps), batch, null), LinearRecurrence.Scan(shared, batch), 1e-10, "shared a, x_0 = 0");
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
        var alpha = start + longEmission.select(1, 0);
        for (int t = 1; t < 800; t++) alpha = torch.logsumexp(alpha.unsqueeze(-1) + a, -2) + longEmission.select(1, t);
        var looped = torch.logsumexp(alpha, -1);
        var tree = HiddenMarkovModel.LogLikelihood(start, a, longEmission);
        AssertClose(looped, tree, 1e-10, "log-likelihood, T = 800");
        var gradLoop = torch.autograd.grad(new[] { looped.sum() }, new[] { logits, longEmission }, retain_graph: true); // log_softmax is shared by both graphs
        var gradTree = torch.autograd.grad(new[] { tree.sum() }, new[] { logits, longEmission });
        for (int i = 0; i < 2; i++) AssertClose(gradLoop[i], gradTree[i], 1e-10, $"gradient {i}");
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
        var alpha = logInitial + emission.select(0, 0);
        for (int t = 1; t < steps; t++) alpha = torch.logsumexp(alpha.unsqueeze(-1) + logTransition, -2) + emission.select(0, t);
        var looped = torch.logsumexp(alpha, -1);
        var tree = HiddenMarkovModel.LogLikelihood(logInitial, logTransition, emission);
        AssertClose(looped, tree, 1e-10, "log-likelihood");
        var gradLoop = torch.autograd.grad(new[] { looped }, new[] { emission })[0];
        var gradTree = torch.autograd.grad(new[] { tree }, new[] { emission })[0];
        Assert.IsTrue(gradTree.isfinite().all().item<bool>(), "finite gradient");
        AssertClose(gradLoop, gradTree, 1e-10, "gradient");
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
