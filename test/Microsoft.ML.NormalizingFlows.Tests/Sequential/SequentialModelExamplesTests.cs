using Microsoft.ML.NormalizingFlows.Modeling;
using Microsoft.ML.NormalizingFlows.Modeling.Constraints;
using Microsoft.ML.NormalizingFlows.Modeling.Distributions;
using Microsoft.ML.NormalizingFlows.Sequential;
using Microsoft.ML.NormalizingFlows.Tensors;
using static Microsoft.ML.NormalizingFlows.Tensors.RootedScalars;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Sequential;

/// <summary>
/// The GARCH and HMM examples of docs/sequential-models.md, as written there, against the same models written as
/// step-by-step loops: equal log densities at random points (the scans change the cost, not the model).
/// </summary>
[TestClass]
public sealed class SequentialModelExamplesTests
{
    private static double[] Series(int length, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, length).Select(t => Math.Sin(t / 15.0) + 0.3 * (random.NextDouble() - 0.5)).ToArray();
    }

    // docs/sequential-models.md, GARCH(1,1) — begin
    private static BayesianModel Garch(double[] returns, bool loop = false) => new BayesianModel("garch")
        .Parameter("mu")
        .Parameter("omega", Constraint.Positive)
        .Parameter("alpha", Constraint.UnitInterval)
        .Parameter("beta", Constraint.UnitInterval)
        .Data("y", returns)
        .LogDensity(m =>
        {
            var eps = m.Data("y").unsqueeze(0) - m["mu"].unsqueeze(1);                      // [B, T]
            long T = eps.shape[1];
            var first = torch.full_like(eps.narrow(1, 0, 1), S(returns.Select(r => r * r).Average())); // σ²₁, [B, 1]
            // σ²_t = β σ²_{t−1} + (ω + α ε²_{t−1}) for t = 2 … T: one scan instead of T − 1 dependent steps.
            var shock = m["omega"].unsqueeze(1).Plus(m["alpha"].unsqueeze(1) * eps.narrow(1, 0, T - 1).Squared());
            var variance = torch.cat(new[] { first, loop ? LoopRecurrence(m["beta"].unsqueeze(1), shock, first)
                                                         : LinearRecurrence.Scan(m["beta"].unsqueeze(1), shock, first.squeeze(1)) }, 1);
            var logLikelihood = new Normal(torch.zeros_like(eps), variance.sqrt()).LogProb(eps).sum(1);
            return logLikelihood + new Normal(0, 1).LogProb(m["mu"]) + new HalfNormal(1).LogProb(m["omega"])
                   + new Beta(2, 5).LogProb(m["alpha"]) + new Beta(5, 2).LogProb(m["beta"]);
        });
    // docs/sequential-models.md, GARCH(1,1) — end

    // docs/sequential-models.md, HMM — begin
    private static BayesianModel Hmm(double[] observations, int states, bool loop = false) => new BayesianModel("hmm")
        .Parameter("transition_logits", Constraint.Real, states, states)
        .Parameter("means", Constraint.Ordered, states)   // ordered: no label switching
        .Parameter("sigma", Constraint.Positive)
        .Data("y", observations)
        .LogDensity(m =>
        {
            var logTransition = torch.nn.functional.log_softmax(m["transition_logits"], -1);     // [B, S, S], rows sum to 1
            var logEmission = new Normal(m["means"].unsqueeze(1), m["sigma"].view(-1, 1, 1))
                .LogProb(m.Data("y").view(1, -1, 1));                                           // [B, T, S]
            var logInitial = torch.full(new long[] { m.BatchSize, states }, -Math.Log(states), dtype: logEmission.dtype);
            var logLikelihood = loop ? LoopForward(logInitial, logTransition, logEmission)
                                     : HiddenMarkovModel.LogLikelihood(logInitial, logTransition, logEmission);
            return logLikelihood + new Normal(0, 1).LogProb(m["transition_logits"]).sum(new long[] { 1, 2 })
                   + new Normal(0, 5).LogProb(m["means"]).sum(1) + new HalfNormal(2).LogProb(m["sigma"]);
        });
    // docs/sequential-models.md, HMM — end

    private static torch.Tensor LoopRecurrence(torch.Tensor a, torch.Tensor b, torch.Tensor first)
    {
        var columns = new List<torch.Tensor>();
        var x = first;
        for (long t = 0; t < b.shape[1]; t++) { x = (a * x).Plus(b.narrow(1, t, 1)); columns.Add(x); }
        return torch.cat(columns, 1);
    }

    private static torch.Tensor LoopForward(torch.Tensor logInitial, torch.Tensor logTransition, torch.Tensor logEmission)
    {
        var alpha = logInitial.Plus(logEmission.select(1, 0));
        for (long t = 1; t < logEmission.shape[1]; t++)
            alpha = torch.logsumexp(alpha.unsqueeze(-1).Plus(logTransition), -2).Plus(logEmission.select(1, t));
        return torch.logsumexp(alpha, -1);
    }

    private static void AssertSameDensity(BayesianModel scanned, BayesianModel looped)
    {
        var z = torch.randn(6, scanned.Dimension, dtype: ScalarType.Float64, generator: new torch.Generator(2)) * 0.5;
        using var noGrad = torch.no_grad();
        var a = scanned.AsTarget().Evaluate(z).data<double>().ToArray();
        var b = looped.AsTarget().Evaluate(z).data<double>().ToArray();
        for (int i = 0; i < a.Length; i++)
        {
            Assert.IsTrue(double.IsFinite(a[i]), $"point {i}: {a[i]}");
            Assert.AreEqual(b[i], a[i], 1e-9 * Math.Max(1, Math.Abs(b[i])), $"point {i}");
        }
    }

    [TestMethod]
    public void TheGarchExampleEqualsItsLoop() => AssertSameDensity(Garch(Series(300, 1)), Garch(Series(300, 1), loop: true));

    [TestMethod]
    public void TheHmmExampleEqualsItsLoop() => AssertSameDensity(Hmm(Series(400, 2), 3), Hmm(Series(400, 2), 3, loop: true));
}
