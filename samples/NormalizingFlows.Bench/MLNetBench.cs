using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Training;
using Microsoft.ML.NormalizingFlows.MLNet;
using Microsoft.ML.NormalizingFlows.Targets;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>
/// "mlnet-density": density-estimation quality through the ML.NET estimator: N training and N test draws
/// from a gallery target by rejection sampling (uniform proposal on the target's support box), fit, then
/// average test log-likelihood vs the true normalized density's (log p̃ − log Z).
/// "mlnet-throughput": rows/s of Transform streaming R rows through a cursor, with resident memory sampled
/// along the way (should stay flat).
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterMLNet()
    {
        Add("mlnet-density", "ML.NET density estimation on rejection-sampled draws: test log-lik gap to the truth. [TARGET=ring] [FLOW=nsf-coupling] [LAYERS=8] [ITERS=3000] [N=20000] [BATCH=256] [LR=1e-3] [THREADS=1]", RunMLNetDensity);
        Add("mlnet-throughput", "Rows/s and memory of Transform streaming R rows. [FLOW=planar] [LAYERS=32] [ROWS=1000000] [THREADS=1]", RunMLNetThroughput);
    }

    private static string Arg(string[] args, int i, string fallback) => args.Length > i ? args[i] : fallback;

    /// <summary>Exact draws from a 2-D gallery target: uniform proposals on its support box, accepted with probability p̃/M.</summary>
    internal static float[][] RejectionSample(Target target, int count, long seed)
    {
        var box = target.Support ?? throw new ArgumentException($"Target '{target.Name}' has no support box.");
        using var noGrad = torch.no_grad();
        var generator = new Generator((ulong)seed);
        // M: the maximum of log p̃ on a fine grid, plus a margin.
        double logM;
        using (var scope = torch.NewDisposeScope())
        {
            var xs = torch.linspace(box.MinX, box.MaxX, 801, dtype: ScalarType.Float64);
            var ys = torch.linspace(box.MinY, box.MaxY, 801, dtype: ScalarType.Float64);
            var grid = torch.stack(new[] { xs.repeat(801), ys.repeat_interleave(801) }, 1);
            logM = target.Evaluate(grid).max().item<double>() + 0.05;
        }
        var result = new List<float[]>(count);
        while (result.Count < count)
        {
            using var scope = torch.NewDisposeScope();
            var u = torch.rand(200_000, 2, dtype: ScalarType.Float64, generator: generator);
            var z = torch.stack(new[] { u[.., 0] * box.Width + box.MinX, u[.., 1] * box.Height + box.MinY }, 1);
            var accept = torch.rand(200_000, dtype: ScalarType.Float64, generator: generator).log() < target.Evaluate(z) - logM;
            var kept = z[accept].to(ScalarType.Float32).contiguous().data<float>().ToArray();
            for (int i = 0; i + 1 < kept.Length && result.Count < count; i += 2) result.Add(new[] { kept[i], kept[i + 1] });
        }
        return result.ToArray();
    }

    private sealed class Row { [VectorType(2)] public float[] Features { get; set; } = Array.Empty<float>(); }

    private static int RunMLNetDensity(string[] args)
    {
        string targetName = Arg(args, 0, "ring"), flow = Arg(args, 1, "nsf-coupling");
        int layers = int.Parse(Arg(args, 2, "8")), iterations = int.Parse(Arg(args, 3, "3000")), n = int.Parse(Arg(args, 4, "20000"));
        int batch = int.Parse(Arg(args, 5, "256"));
        double lr = double.Parse(Arg(args, 6, "1e-3"), System.Globalization.CultureInfo.InvariantCulture);
        int threads = int.Parse(Arg(args, 7, "1"));
        torch.set_num_threads(threads);
        var target = TargetGallery.Create(targetName);
        double logZ = target.LogNormalizer ?? throw new InvalidOperationException("The target has no log Z.");
        var clock = Stopwatch.StartNew();
        var train = RejectionSample(target, n, seed: 1);
        var test = RejectionSample(target, n, seed: 2);
        Console.WriteLine($"target={targetName} logZ={logZ:F5} draws: {n} train + {n} test by rejection sampling ({clock.Elapsed.TotalSeconds:F1} s)");

        var ml = new MLContext(seed: 1);
        var trainView = ml.Data.LoadFromEnumerable(train.Select(x => new Row { Features = x }));
        var testView = ml.Data.LoadFromEnumerable(test.Select(x => new Row { Features = x }));
        var options = new NormalizingFlowEstimator.Options
        {
            Flow = flow, Layers = layers, Iterations = iterations, BatchSize = batch, LearningRate = lr, Seed = 1,
            LearningRateDecay = Math.Pow(0.05, 1.0 / iterations), // cosine-like: decays to 5% of the rate by the end
            ReportEvery = Math.Max(1, iterations / 10),
            Progress = new InlineProgress<Microsoft.ML.NormalizingFlows.Training.TrainingProgress>(p =>
                Console.WriteLine($"  step {p.Iteration}: train mean log-lik {p.Elbo:F4} ({p.Elapsed.TotalSeconds:F0} s)")),
        };
        clock.Restart();
        var model = ml.Transforms.NormalizingFlowDensity(options).Fit(trainView);
        double fitSeconds = clock.Elapsed.TotalSeconds;
        var logQ = model.ScoreLogQ(testView, "Features").GetColumn<float>("LogQ").Select(v => (double)v).ToArray();
        double modelAvg = logQ.Average();
        double modelSe = Math.Sqrt(logQ.Select(v => (v - modelAvg) * (v - modelAvg)).Sum() / (n - 1) / n);
        double[] truth;
        using (torch.no_grad())
        {
            var x = torch.tensor(test.SelectMany(v => v).ToArray(), new long[] { n, 2 }).to(ScalarType.Float64);
            truth = target.Evaluate(x).data<double>().Select(v => v - logZ).ToArray();
        }
        double trueAvg = truth.Average();
        // The gap is a mean of per-point differences (a Monte Carlo estimate of KL(p‖q)); its standard error:
        var diff = truth.Zip(logQ, (t, m) => t - m).ToArray();
        double gapSe = Math.Sqrt(diff.Select(v => (v - diff.Average()) * (v - diff.Average())).Sum() / (n - 1) / n);
        Console.WriteLine($"flow={flow} K={layers} iters={iterations} batch={batch} lr={lr} fit_seconds={fitSeconds:F1}");
        Console.WriteLine($"test avg log-lik: model={modelAvg:F4} (±{modelSe:F4}) true={trueAvg:F4} gap={trueAvg - modelAvg:F4} ± {gapSe:F4} nats");
        return 0;
    }

    private static int RunMLNetThroughput(string[] args)
    {
        string flow = Arg(args, 0, "planar");
        int layers = int.Parse(Arg(args, 1, "32"));
        long rows = long.Parse(Arg(args, 2, "1000000"));
        int threads = int.Parse(Arg(args, 3, "1"));
        torch.set_num_threads(threads);
        var ml = new MLContext(seed: 1);
        var options = new NormalizingFlowEstimator.Options { Flow = flow, Layers = layers, Iterations = 200, BatchSize = 128, Seed = 1 };
        var model = ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), options).Fit(ml.Data.CreateEmptyRows(0));
        int parameters = model.Flow.parameters().Sum(p => (int)p.numel());
        var output = model.Transform(ml.Data.CreateEmptyRows(rows));
        var columns = output.Schema.Where(c => !c.IsHidden).ToArray();
        using var cursor = output.GetRowCursor(columns);
        var sample = cursor.GetGetter<VBuffer<float>>(output.Schema["Sample"]);
        var logQ = cursor.GetGetter<float>(output.Schema["LogQ"]);
        var logW = cursor.GetGetter<float>(output.Schema["LogWeight"]);
        VBuffer<float> z = default;
        float lq = 0, lw = 0;
        double checksum = 0;
        var rss = new List<double>();
        var clock = Stopwatch.StartNew();
        long count = 0;
        while (cursor.MoveNext())
        {
            sample(ref z); logQ(ref lq); logW(ref lw);
            checksum += z.GetItemOrDefault(0) + lq;
            if (++count % (rows / 10) == 0) rss.Add(Process.GetCurrentProcess().WorkingSet64 / 1e6);
        }
        double seconds = clock.Elapsed.TotalSeconds;
        Console.WriteLine($"flow={flow} K={layers} params={parameters} rows={count} seconds={seconds:F2} rows_per_s={count / seconds:F0} threads={threads} block={model.BlockSize} checksum={checksum:F1}");
        Console.WriteLine($"rss_mb every {rows / 10} rows: {string.Join(" ", rss.Select(r => r.ToString("F0")))}");
        return 0;
    }
}
