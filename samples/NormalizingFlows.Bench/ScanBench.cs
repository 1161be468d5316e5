using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.NormalizingFlows;
using Microsoft.ML.NormalizingFlows.Sequential;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Tensors;
using TorchSharp;
using static Microsoft.ML.NormalizingFlows.Tensors.RootedScalars;
using static TorchSharp.torch;

/// <summary>
/// "scan": training-step time of two sequential likelihoods written step by step (a loop over t) and with the
/// library's helpers (Sequential/), both as CPU tensors take them (a compiled sequential pass) and as other devices
/// take them (a product tree / chunked scan, timed here on CPU): an HMM's forward algorithm (HiddenMarkovModel) and a
/// GARCH(1,1) variance recursion (LinearRecurrence), for several series lengths T. One step = draw a batch from
/// q, evaluate log p̃, backpropagate, as in training. The two log densities are checked equal first.
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterScan() => Add("scan", "HMM and GARCH likelihoods, loop vs Sequential/ helpers: [--batch B] [--steps N] [--threads N]", Scan);

    private static int Scan(string[] args)
    {
        int batch = 64, steps = 5, threads = 1;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--batch": batch = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--steps": steps = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--threads": threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                default: throw new FormatException($"unknown argument '{args[i]}'");
            }
        }
        torch.set_num_threads(threads);
        Console.WriteLine($"training-step time (ms; batch {batch}, mean of {steps} steps after {WarmUpSteps} warm-up steps, {threads} thread(s)), loop vs the Sequential/ helpers");
        Console.WriteLine($"{"model",-18}{"T",7}{"loop",10}{"scan",10}{"speed-up",10}{"max |Δ log p̃|",16}");
        // "scan" is the helper as CPU tensors take it (a sequential pass); the indented rows, the path other devices take.
        foreach (int states in new[] { 2, 4 })
            foreach (int length in new[] { 400, 1_000 })
            {
                var loop = new HmmTarget(states, length, null);
                ScanRow($"HMM, {states} states", length, loop, new HmmTarget(states, length, HiddenMarkovModel.Algorithm.Automatic), batch, steps);
                ScanRow("  product tree", length, loop, new HmmTarget(states, length, HiddenMarkovModel.Algorithm.ProductTree), batch, steps);
            }
        foreach (int length in new[] { 200, 400, 1_000, 2_000 })
        {
            var loop = new GarchTarget(length, null);
            ScanRow("GARCH(1,1)", length, loop, new GarchTarget(length, LinearRecurrence.Algorithm.Automatic), batch, steps);
            ScanRow("  chunked scan", length, loop, new GarchTarget(length, LinearRecurrence.Algorithm.ChunkedScan), batch, steps);
        }
        return 0;
    }

    private static void ScanRow(string name, int length, Target loop, Target scan, int batch, int steps)
    {
        var q = FlowFactory.Create("mean-field", loop.Dimension, 1, seed: 1);
        q.to(ScalarType.Float64);
        double gap;
        using (torch.no_grad())
        using (var scope = torch.NewDisposeScope())
        {
            var z = torch.randn(8, loop.Dimension, dtype: ScalarType.Float64, generator: new Generator(5)) * S(0.3);
            gap = (loop.Evaluate(z) - scan.Evaluate(z)).abs().max().item<double>();
        }
        if (!LoopTimes.TryGetValue(loop, out double loopMs)) LoopTimes[loop] = loopMs = StepTime(q, loop, batch, steps);
        double scanMs = StepTime(q, scan, batch, steps);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name,-18}{length,7}{loopMs,10:F1}{scanMs,10:F1}{loopMs / scanMs,9:F1}×{gap,16:E1}"));
    }

    /// <summary>
    /// Untimed steps first: .NET compiles code called from the step (TensorPrimitives' vector loops among it) unoptimized
    /// until it has run a few dozen times, which one warm-up step left showing in the first row.
    /// </summary>
    private const int WarmUpSteps = 10;

    /// <summary>A loop compared with two implementations is timed once.</summary>
    private static readonly Dictionary<Target, double> LoopTimes = new();

    private static double StepTime(Microsoft.ML.NormalizingFlows.Distributions.FlowDistribution q, Target target, int batch, int steps)
    {
        var generator = new Generator(1);
        var clock = new Stopwatch();
        for (int i = 0; i < WarmUpSteps + steps; i++)
        {
            if (i == WarmUpSteps) clock.Start();
            using var scope = torch.NewDisposeScope();
            var (z, logQ) = q.Sample(batch, generator);
            (logQ - target.Evaluate(z)).mean().backward();
        }
        return clock.Elapsed.TotalMilliseconds / steps;
    }

    /// <summary>
    /// GARCH(1,1): y_t = μ + ε_t, ε_t ~ N(0, σ²_t), σ²_t = ω + α ε²_{t−1} + β σ²_{t−1}, σ²_1 = the series' variance.
    /// z = (μ, log ω, logit α, logit β) with standard-normal priors on z; data simulated once.
    /// </summary>
    private sealed class GarchTarget : Target
    {
        private readonly CachedConstant y;
        private readonly double initialVariance;
        private readonly LinearRecurrence.Algorithm? algorithm; // null: the step-by-step loop

        public GarchTarget(int length, LinearRecurrence.Algorithm? algorithm) : base("garch", 4)
        {
            this.algorithm = algorithm;
            var random = new Random(3);
            var values = new double[length];
            double variance = 0.2, previous = 0;
            for (int t = 0; t < length; t++)
            {
                variance = 0.05 + 0.1 * previous * previous + 0.85 * variance;
                previous = Math.Sqrt(variance) * StandardNormal(random);
                values[t] = 0.1 + previous;
            }
            double mean = values.Average();
            initialVariance = values.Sum(v => (v - mean) * (v - mean)) / length;
            y = new CachedConstant(values);
        }

        public override Tensor LogDensity(Tensor z)
        {
            var mu = z.select(1, 0).unsqueeze(1);
            var omega = z.select(1, 1).exp().unsqueeze(1);
            var alpha = z.select(1, 2).sigmoid().unsqueeze(1);
            var beta = z.select(1, 3).sigmoid().unsqueeze(1);
            var eps = y.Like(z).unsqueeze(0) - mu; // [B, T]
            long length = eps.shape[1];
            var first = torch.full(new long[] { z.shape[0], 1 }, S(initialVariance), dtype: z.dtype, device: z.device);
            Tensor variance;
            var shock = omega.Plus(alpha * eps.narrow(1, 0, length - 1).Squared()); // ω + α ε²_{t−1}, t = 2 … T
            if (algorithm is { } chosen)
                variance = torch.cat(new[] { first, LinearRecurrence.Scan(beta, shock, first.squeeze(1), chosen) }, 1);
            else
            {
                var columns = new List<Tensor> { first };
                for (long t = 1; t < length; t++) columns.Add(shock.narrow(1, t - 1, 1).Plus(beta * columns[^1]));
                variance = torch.cat(columns, 1);
            }
            var logLikelihood = (variance.log().Plus(eps.Squared() / variance)).sum(1) * S(-0.5);
            return logLikelihood - z.Squared().sum(1) * S(0.5);
        }
    }

    /// <summary>
    /// An HMM with S states and Gaussian emissions N(m_s, σ): z = (transition logits S×S, means S, log σ), standard-normal
    /// priors on z, uniform initial state; data simulated once from a sticky chain.
    /// </summary>
    private sealed class HmmTarget : Target
    {
        private readonly CachedConstant y;
        private readonly int states;
        private readonly HiddenMarkovModel.Algorithm? algorithm; // null: the step-by-step loop

        public HmmTarget(int states, int length, HiddenMarkovModel.Algorithm? algorithm) : base("hmm", states * states + states + 1)
        {
            this.states = states;
            this.algorithm = algorithm;
            var random = new Random(4);
            var values = new double[length];
            int state = 0;
            for (int t = 0; t < length; t++)
            {
                if (random.NextDouble() < 0.1) state = random.Next(states);
                values[t] = state + 0.5 * StandardNormal(random);
            }
            y = new CachedConstant(values);
        }

        public override Tensor LogDensity(Tensor z)
        {
            long b = z.shape[0];
            var logTransition = torch.nn.functional.log_softmax(z.narrow(1, 0, states * states).view(b, states, states), -1);
            var means = z.narrow(1, states * states, states);          // [B, S]
            var logSd = z.narrow(1, states * states + states, 1);      // [B, 1]
            var centred = (y.Like(z).view(1, -1, 1) - means.unsqueeze(1)) / logSd.exp().unsqueeze(1); // [B, T, S]
            var logEmission = (centred.Squared() * S(-0.5)) - logSd.unsqueeze(1) - S(0.5 * Math.Log(2 * Math.PI));
            var logInitial = torch.full(new long[] { b, states }, S(-Math.Log(states)), dtype: z.dtype, device: z.device);
            Tensor logLikelihood;
            if (algorithm is { } chosen) logLikelihood = HiddenMarkovModel.LogLikelihood(logInitial, logTransition, logEmission, chosen);
            else
            {
                var alpha = logInitial.Plus(logEmission.select(1, 0));
                for (long t = 1; t < logEmission.shape[1]; t++)
                    alpha = torch.logsumexp(alpha.unsqueeze(-1).Plus(logTransition), -2).Plus(logEmission.select(1, t));
                logLikelihood = torch.logsumexp(alpha, -1);
            }
            return logLikelihood - z.Squared().sum(1) * S(0.5);
        }
    }

    private static double StandardNormal(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
