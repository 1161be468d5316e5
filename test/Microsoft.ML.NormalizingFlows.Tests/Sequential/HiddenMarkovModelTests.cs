using Microsoft.ML.NormalizingFlows.Sequential;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Microsoft.ML.NormalizingFlows.Tests.Sequential.SequentialReferences;

namespace Microsoft.ML.NormalizingFlows.Tests.Sequential;

/// <summary>
/// The HMM likelihood equals path enumeration and the log-space forward loop, in value and gradient (float64, 1e-10), and
/// survives −∞ and extreme emissions. Run once per implementation: the sequential CPU pass that CPU tensors take, and
/// the product tree that other devices take (so that a CPU-only suite still holds the tree to the loop).
/// </summary>
public abstract class HiddenMarkovModelTests
{
    private protected abstract HiddenMarkovModel.Algorithm Algorithm { get; }

    private torch.Tensor LogLikelihood(torch.Tensor logInitial, torch.Tensor logTransition, torch.Tensor logEmission) =>
        HiddenMarkovModel.LogLikelihood(logInitial, logTransition, logEmission, Algorithm);

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
        Assert.AreEqual(Math.Log(total), LogLikelihood(logInitial, logTransition, logEmission).item<double>(), 1e-12);

        // A long series, batched over 4 parameter draws, against the forward loop, value and gradient.
        var logits = Random(12, 4, states, states).requires_grad_();
        var longEmission = (Random(13, 4, 800, states) - 2).requires_grad_();
        var a = torch.nn.functional.log_softmax(logits, -1);
        var start = torch.full(new long[] { 4, states }, -Math.Log(states), dtype: ScalarType.Float64);
        var looped = ForwardLoop(start, a, longEmission);
        var tree = LogLikelihood(start, a, longEmission);
        AssertCloseRelative(looped, tree, 1e-10, "log-likelihood, T = 800");
        var gradLoop = torch.autograd.grad(new[] { looped.sum() }, new[] { logits, longEmission }, retain_graph: true); // log_softmax is shared by both graphs
        var gradTree = torch.autograd.grad(new[] { tree.sum() }, new[] { logits, longEmission });
        for (int i = 0; i < 2; i++) AssertCloseRelative(gradLoop[i], gradTree[i], 1e-10, $"gradient {i}");
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
        var tree = LogLikelihood(logInitial, logTransition, logEmission);
        var looped = ForwardLoop(logInitial, logTransition, logEmission);
        AssertCloseRelative(looped, tree, 1e-10, "log-likelihood");
        var inputs = new[] { logInitial, logTransition, logEmission };
        var gradTree = torch.autograd.grad(new[] { (tree * w).sum() }, inputs);
        var gradLoop = torch.autograd.grad(new[] { (looped * w).sum() }, inputs, allow_unused: true);
        for (int i = 0; i < 3; i++)
            AssertCloseRelative(gradLoop[i] is null || gradLoop[i].IsInvalid ? torch.zeros_like(inputs[i]) : gradLoop[i], gradTree[i], 1e-10, $"gradient {i}");
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
        var tree = LogLikelihood(logInitial, logTransition, logEmission);
        // The loop's own gradient is NaN here (log-sum-exp over a column of −∞), so it runs with log 0 as −1,000 instead.
        var looped = ForwardLoop(logInitial.clamp_min(-1000), logTransition.clamp_min(-1000), logEmission);
        Assert.IsTrue(tree.isfinite().item<bool>(), "finite log-likelihood");
        AssertCloseRelative(looped, tree, 1e-10, "log-likelihood");
        var gradTree = torch.autograd.grad(new[] { tree }, new[] { logEmission })[0];
        var gradLoop = torch.autograd.grad(new[] { looped }, new[] { logEmission })[0];
        AssertCloseRelative(gradLoop, gradTree, 1e-10, "gradient");
    }

    [TestMethod]
    public void TheHmmLikelihoodTakesFloat32AndNamesBatchesThatDoNotBroadcast()
    {
        var logTransition = torch.nn.functional.log_softmax(Random(27, 2, 2), 1);
        var logInitial = torch.full(2, -Math.Log(2), ScalarType.Float64);
        var logEmission = Random(28, 4, 100, 2);
        var reference = ForwardLoop(logInitial, logTransition, logEmission);
        var single = LogLikelihood(logInitial.to_type(ScalarType.Float32), logTransition.to_type(ScalarType.Float32), logEmission.to_type(ScalarType.Float32));
        Assert.AreEqual(ScalarType.Float32, single.dtype);
        Assert.IsTrue((single.to_type(ScalarType.Float64) - reference).abs().max().item<double>() < 1e-3 * reference.abs().max().item<double>(), "float32 within its precision");
        var e = Assert.ThrowsExactly<ArgumentException>(() => LogLikelihood(torch.zeros(3, 2), torch.zeros(2, 2), torch.zeros(4, 10, 2)));
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
        var tree = LogLikelihood(logInitial, logTransition, emission);
        AssertCloseRelative(looped, tree, 1e-10, "log-likelihood");
        var gradLoop = torch.autograd.grad(new[] { looped }, new[] { emission })[0];
        var gradTree = torch.autograd.grad(new[] { tree }, new[] { emission })[0];
        Assert.IsTrue(gradTree.isfinite().all().item<bool>(), "finite gradient");
        AssertCloseRelative(gradLoop, gradTree, 1e-10, "gradient");
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
            var logLikelihood = LogLikelihood(torch.zeros(2, dtype: dtype), torch.zeros(2, 2, dtype: dtype), emission);
            var values = logLikelihood.to_type(ScalarType.Float64).data<double>().ToArray();
            Assert.IsTrue(double.IsNegativeInfinity(values[0]) && double.IsNegativeInfinity(values[1]), $"T = {steps}: {string.Join(", ", values)}");
            Assert.AreEqual(steps * Math.Log(2), values[2], 1e-5, $"T = {steps}: uniform chain, log 2 per step");
            logLikelihood.sum().backward();
            Assert.IsTrue(emission.grad!.isfinite().all().item<bool>(), $"T = {steps}: finite gradient");
        }
    }

    [TestMethod]
    public void MixedPrecisionPromotes()
    {
        // float32 π against float64 A and emissions gives the float64 likelihood.
        var logTransition = torch.nn.functional.log_softmax(Random(31, 2, 2), 1);
        var logEmission = Random(32, 30, 2);
        var logInitial = torch.full(2, -Math.Log(2), ScalarType.Float64);
        var mixed = LogLikelihood(logInitial.to_type(ScalarType.Float32), logTransition, logEmission);
        Assert.AreEqual(ScalarType.Float64, mixed.dtype);
        AssertCloseRelative(ForwardLoop(logInitial.to_type(ScalarType.Float32).to_type(ScalarType.Float64), logTransition, logEmission), mixed, 1e-10, "mixed-precision HMM");
    }
}

[TestClass]
public sealed class HiddenMarkovModelSequentialCpuTests : HiddenMarkovModelTests
{
    private protected override HiddenMarkovModel.Algorithm Algorithm => HiddenMarkovModel.Algorithm.SequentialCpu;
}

[TestClass]
public sealed class HiddenMarkovModelProductTreeTests : HiddenMarkovModelTests
{
    private protected override HiddenMarkovModel.Algorithm Algorithm => HiddenMarkovModel.Algorithm.ProductTree;
}
