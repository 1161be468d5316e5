using System.Diagnostics;
using Microsoft.ML.NormalizingFlows;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// "seed": the seed's experiment (ring, planar K = 32, batch 128, Adam 6e-4, 20,000 iterations, 1 thread),
/// the same configuration as shared/bench/seed_planar_ring.py, for a like-for-like time and KL comparison.
/// Also samples resident memory after 1,000 and after the last iteration (leak check).
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterSeed() => Add("seed", "Seed experiment vs the PyTorch anchor: time, ms/iteration, exact KL, memory. [ITERS] [K] [BATCH] [THREADS] [SEED]", RunSeed);

    private static int RunSeed(string[] args)
    {
        int iterations = args.Length > 0 ? int.Parse(args[0]) : 20_000;
        int layers = args.Length > 1 ? int.Parse(args[1]) : 32;
        int batch = args.Length > 2 ? int.Parse(args[2]) : 128;
        int threads = args.Length > 3 ? int.Parse(args[3]) : 1;
        long seed = args.Length > 4 ? long.Parse(args[4]) : 0;
        var target = TargetGallery.Create("ring");
        var q = FlowFactory.Create("planar", 2, layers, seed);
        var options = new TrainerOptions { Iterations = iterations, BatchSize = batch, LearningRate = 6e-4, Threads = threads, ReportEvery = 1000, Seed = seed };
        double rssAt1000 = double.NaN;
        var progress = new InlineProgress<TrainingProgress>(p =>
        {
            if (p.Iteration == 1000) { GC.Collect(); rssAt1000 = Process.GetCurrentProcess().WorkingSet64 / 1e6; }
        });
        var result = VariationalTrainer.Fit(q, target, options, progress);
        GC.Collect();
        double rssEnd = Process.GetCurrentProcess().WorkingSet64 / 1e6;
        var estimate = Evaluation.EstimateElbo(q, target, 20_000);
        Console.WriteLine($"iters={iterations} K={layers} batch={batch} threads={threads} seed={seed} seconds={result.Elapsed.TotalSeconds:F2} " +
                          $"ms_per_iter={result.Elapsed.TotalMilliseconds / iterations:F3} neg_elbo={-estimate.Elbo:F4} " +
                          $"kl={estimate.Kl:F4}±{estimate.StandardError:F4} skipped={result.SkippedSteps}");
        Console.WriteLine($"rss_mb_after_1000={rssAt1000:F1} rss_mb_at_end={rssEnd:F1} growth={(rssEnd / rssAt1000 - 1) * 100:F1}%");
        return 0;
    }
}
