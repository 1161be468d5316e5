using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.NormalizingFlows;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// "seed": the seed's experiment (ring, planar K = 32, batch 128, Adam 6e-4, 20,000 iterations, 1 thread),
/// the same configuration as shared/bench/seed_planar_ring.py, for a like-for-like time and KL comparison.
/// Also samples resident memory after 1,000 and after the last iteration (leak check). With --anchor it first
/// runs the PyTorch script itself (same settings, same sitting) and prints both times and their ratio.
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterSeed() => Add("seed",
        "Seed experiment vs the PyTorch anchor: time, ms/iteration, exact KL, memory. [ITERS=20000] [K=32] [BATCH=128] [THREADS=1] [SEED=0] " +
        "[--anchor [SCRIPT]] (runs shared/bench/seed_planar_ring.py first; found by searching upward) [--python PATH=/usr/bin/python3] " +
        "[--seeds FIRST-LAST] (one fit per seed: exact KL of each, median, range, and how many reach ≤ 0.01) " +
        "[--budget SECONDS | --anchor --anchor-fraction F] (with --seeds: time to quality, each seed trained for a wall-time budget) " +
        "[--cosine] (with --seeds: the rate decays from 6e-4 to 0 by a cosine over the steps instead of staying constant) " +
        "[--checkpoints EVERY] (with --seeds: exact KL every EVERY steps, and the first checkpoint whose median over the seeds is ≤ 0.01, with its training time; with --anchor --anchor-fraction F, whether that came within F × the anchor's time) " +
        "[--gradient standard|stl] (the ELBO's gradient estimator; stl = sticking the landing)", RunSeed);

    private static int RunSeed(string[] args)
    {
        var positional = new List<string>();
        string? anchorScript = null;
        bool runAnchor = false;
        string python = "/usr/bin/python3";
        (long First, long Last)? seedRange = null;
        double? budgetSeconds = null, anchorFraction = null;
        bool cosine = false;
        int? checkpointEvery = null;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--cosine") { cosine = true; continue; }
            if (args[i] == "--gradient")
            {
                string name = i + 1 < args.Length ? args[++i] : "";
                if (name is not ("standard" or "stl")) { Console.Error.WriteLine($"error: --gradient expects standard or stl, not '{name}'."); return 2; }
                seedGradient = name == "stl" ? GradientEstimator.StickingTheLanding : GradientEstimator.Standard;
                continue;
            }
            if (args[i] == "--checkpoints") { checkpointEvery = int.Parse(args[++i], CultureInfo.InvariantCulture); continue; }
            if (args[i] == "--budget") { budgetSeconds = double.Parse(args[++i], CultureInfo.InvariantCulture); continue; }
            if (args[i] == "--anchor-fraction") { anchorFraction = double.Parse(args[++i], CultureInfo.InvariantCulture); continue; }
            if (args[i] == "--seeds")
            {
                var parts = i + 1 < args.Length ? args[++i].Split('-') : Array.Empty<string>();
                if (parts.Length != 2 || !long.TryParse(parts[0], CultureInfo.InvariantCulture, out long first)
                    || !long.TryParse(parts[1], CultureInfo.InvariantCulture, out long last) || first < 0 || last < first)
                {
                    Console.Error.WriteLine("error: --seeds expects FIRST-LAST with 0 ≤ FIRST ≤ LAST, e.g. --seeds 0-7.");
                    return 2;
                }
                seedRange = (first, last);
                continue;
            }
            if (args[i] == "--anchor")
            {
                runAnchor = true;
                if (i + 1 < args.Length && args[i + 1].EndsWith(".py", StringComparison.Ordinal)) anchorScript = args[++i];
            }
            else if (args[i] == "--python" && i + 1 < args.Length) python = args[++i];
            else positional.Add(args[i]);
        }
        int iterations = positional.Count > 0 ? int.Parse(positional[0], CultureInfo.InvariantCulture) : 20_000;
        int layers = positional.Count > 1 ? int.Parse(positional[1], CultureInfo.InvariantCulture) : 32;
        int batch = positional.Count > 2 ? int.Parse(positional[2], CultureInfo.InvariantCulture) : 128;
        int threads = positional.Count > 3 ? int.Parse(positional[3], CultureInfo.InvariantCulture) : 1;
        long seed = positional.Count > 4 ? long.Parse(positional[4], CultureInfo.InvariantCulture) : 0;

        if (seedRange is var (firstSeed, lastSeed))
        {
            // Time to quality: with --anchor-fraction F each seed gets F × the anchor's wall time (the anchor runs first,
            // same sitting); with --budget S, S seconds. Iterations are then only an upper bound.
            if (runAnchor != anchorFraction.HasValue)
            {
                Console.Error.WriteLine("error: with --seeds, --anchor needs --anchor-fraction F (each seed's time budget is F × the anchor's time), and vice versa.");
                return 2;
            }
            if (runAnchor)
            {
                anchorScript ??= SharedFiles.FindUpward(Path.Combine("shared", "bench", "seed_planar_ring.py"));
                if (anchorScript is null) { Console.Error.WriteLine("error: --anchor: shared/bench/seed_planar_ring.py not found."); return 2; }
                // The yardstick is the anchor's own experiment, 20,000 steps, whatever number of steps ours may take.
                if (RunAnchor(python, anchorScript, AnchorIterations, layers, batch, threads) is not double anchorTime) return 1;
                budgetSeconds = anchorFraction!.Value * anchorTime;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"budget per seed: {anchorFraction:G3} × {anchorTime:F1} s = {budgetSeconds:F1} s"));
            }
            if (checkpointEvery is int every)
            {
                // With --anchor the fraction of the anchor's time is not a training limit here but the yardstick for
                // "time to quality": the run says whether the median reached 0.01 within it.
                if (every < SeedReportEvery || every % SeedReportEvery != 0 || (budgetSeconds is not null && !runAnchor))
                {
                    Console.Error.WriteLine("error: --checkpoints EVERY needs a multiple of 1,000 (progress comes every 1,000 steps) and no --budget (use --anchor --anchor-fraction F for a yardstick).");
                    return 2;
                }
                return RunSeedCheckpoints(iterations, layers, batch, threads, firstSeed, lastSeed, every, runAnchor ? budgetSeconds : null);
            }
            return RunSeedSweep(budgetSeconds is null ? iterations : 2_000_000, layers, batch, threads, firstSeed, lastSeed,
                budgetSeconds is double b ? TimeSpan.FromSeconds(b) : null, cosine);
        }

        double? anchorSeconds = null;
        if (runAnchor)
        {
            anchorScript ??= SharedFiles.FindUpward(Path.Combine("shared", "bench", "seed_planar_ring.py"));
            if (anchorScript is null || !File.Exists(anchorScript))
            {
                Console.Error.WriteLine("error: --anchor: shared/bench/seed_planar_ring.py not found above the current folder or the bench; pass its path.");
                return 2;
            }
            anchorSeconds = RunAnchor(python, anchorScript, iterations, layers, batch, threads);
            if (anchorSeconds is null) return 1;
        }

        double rssAt1000 = double.NaN, rssEnd = double.NaN;
        var progress = new InlineProgress<TrainingProgress>(p =>
        {
            if (p.Iteration == 1000) { GC.Collect(); rssAt1000 = Process.GetCurrentProcess().WorkingSet64 / 1e6; }
            if (p.Iteration == iterations) { GC.Collect(); rssEnd = Process.GetCurrentProcess().WorkingSet64 / 1e6; }
        });
        var (result, estimate) = FitSeedExperiment(iterations, layers, batch, threads, seed, progress);
        Console.WriteLine($"ours:   iters={iterations} K={layers} batch={batch} threads={threads} seed={seed} seconds={result.Elapsed.TotalSeconds:F2} " +
                          $"ms_per_iter={result.Elapsed.TotalMilliseconds / iterations:F3} neg_elbo={-estimate.Elbo:F4} " +
                          $"kl={estimate.Kl:F4}±{estimate.StandardError:F4} (100,000 draws) skipped={result.SkippedSteps}");
        Console.WriteLine($"        rss_mb_after_1000={rssAt1000:F1} rss_mb_at_end={rssEnd:F1} growth={(rssEnd / rssAt1000 - 1) * 100:F1}%");
        if (anchorSeconds is double anchor)
            Console.WriteLine($"time ratio ours/anchor = {result.Elapsed.TotalSeconds / anchor:F3} ({anchor / result.Elapsed.TotalSeconds:F1}x faster)");
        return 0;
    }

    /// <summary>
    /// The seed's configuration (ring, planar K, batch, Adam 6e-4) fitted once, then evaluated exactly on 100,000 draws.
    /// Progress is reported every 1,000 iterations and at the last one.
    /// </summary>
    private static (FitResult Result, ElboEstimate Estimate) FitSeedExperiment(int iterations, int layers, int batch, int threads, long seed,
        IProgress<TrainingProgress>? progress, TimeSpan? budget = null, bool cosine = false)
    {
        var target = TargetGallery.Create("ring");
        var q = FlowFactory.Create("planar", 2, layers, seed);
        var result = VariationalTrainer.Fit(q, target, SeedOptions(iterations, batch, threads, seed, budget, cosine), progress);
        return (result, Evaluation.EstimateElbo(q, target, 100_000));
    }

    /// <summary>The ELBO's gradient estimator for every fit of this run (--gradient).</summary>
    private static GradientEstimator seedGradient = GradientEstimator.Standard;

    /// <summary>The anchor's experiment: 20,000 steps (its time, times a fraction, is the time-to-quality yardstick).</summary>
    private const int AnchorIterations = 20_000;

    /// <summary>Steps between progress reports: the memory probe and the checkpoints hook onto them.</summary>
    private const int SeedReportEvery = 1000;

    /// <summary>The seed's training settings: Adam 6e-4, constant (or a cosine to 0), progress every 1,000 steps.</summary>
    private static TrainerOptions SeedOptions(int iterations, int batch, int threads, long seed, TimeSpan? budget = null, bool cosine = false) => new()
    {
        Objective = seedGradient == GradientEstimator.Standard ? null : new ElboObjective(seedGradient),
        Iterations = iterations, BatchSize = batch, LearningRate = 6e-4, Threads = threads, ReportEvery = SeedReportEvery, Seed = seed, TimeLimit = budget,
        Schedule = cosine ? LearningRateSchedule.Cosine(0.0) : null,
    };

    /// <summary>
    /// Time to quality: each seed's exact KL (100,000 draws) every <paramref name="every"/> steps, with the training time up
    /// to that step (the evaluations' own time taken out); then, per checkpoint, the median over the seeds, and the first
    /// checkpoint at which it is ≤ 0.01.
    /// </summary>
    private static int RunSeedCheckpoints(int iterations, int layers, int batch, int threads, long firstSeed, long lastSeed, int every, double? yardstickSeconds)
    {
        var kls = new SortedDictionary<int, List<double>>();
        var seconds = new SortedDictionary<int, List<double>>();
        var target = TargetGallery.Create("ring");
        for (long seed = firstSeed; seed <= lastSeed; seed++)
        {
            var q = FlowFactory.Create("planar", 2, layers, seed);
            var evaluating = TimeSpan.Zero;
            var line = new List<string>();
            var progress = new InlineProgress<TrainingProgress>(p =>
            {
                if (p.Iteration % every != 0) return;
                var clock = Stopwatch.StartNew();
                double kl = Evaluation.EstimateElbo(q, target, 100_000).Kl!.Value;
                double trained = (p.Elapsed - evaluating).TotalSeconds;
                evaluating += clock.Elapsed;
                (kls.TryGetValue(p.Iteration, out var k) ? k : kls[p.Iteration] = new()).Add(kl);
                (seconds.TryGetValue(p.Iteration, out var t) ? t : seconds[p.Iteration] = new()).Add(trained);
                line.Add(string.Create(CultureInfo.InvariantCulture, $"{p.Iteration / 1000}k:{kl:F4}"));
            });
            VariationalTrainer.Fit(q, target, SeedOptions(iterations, batch, threads, seed), progress);
            Console.WriteLine($"seed={seed} " + string.Join(' ', line));
        }
        int? reached = null;
        foreach (var (step, values) in kls)
        {
            double median = Median(values);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"step {step,8}: median kl={median:F4} ({values.Count(k => k <= 0.01)} of {values.Count} ≤ 0.01), median training time {Median(seconds[step]):F1} s"));
            if (median <= 0.01) reached ??= step;
        }
        Console.WriteLine(reached is int r
            ? string.Create(CultureInfo.InvariantCulture, $"median kl ≤ 0.01 first at step {r}, after a median {Median(seconds[r]):F1} s of training per seed")
            : "median kl ≤ 0.01 not reached");
        if (yardstickSeconds is double limit)
            Console.WriteLine(reached is int first && Median(seconds[first]) <= limit
                ? string.Create(CultureInfo.InvariantCulture, $"time to quality: {Median(seconds[first]):F1} s ≤ {limit:F1} s (the anchor's time × the fraction): reached")
                : string.Create(CultureInfo.InvariantCulture, $"time to quality: not reached within {limit:F1} s (the anchor's time × the fraction)"));
        return 0;
    }

    private static double Median(IReadOnlyCollection<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>The seed experiment once per seed: how the final KL after a fixed number of steps spreads over random streams.</summary>
    private static int RunSeedSweep(int iterations, int layers, int batch, int threads, long firstSeed, long lastSeed, TimeSpan? budget = null, bool cosine = false)
    {
        var kls = new List<double>();
        for (long seed = firstSeed; seed <= lastSeed; seed++)
        {
            var (result, estimate) = FitSeedExperiment(iterations, layers, batch, threads, seed, progress: null, budget, cosine);
            kls.Add(estimate.Kl!.Value); // the ring has an exact log Z
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"seed={seed} seconds={result.Elapsed.TotalSeconds:F2} steps={result.Iterations} kl={estimate.Kl:F4}±{estimate.StandardError:F4} (100,000 draws)"));
        }
        var sorted = kls.Order().ToArray();
        double median = Median(kls);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"seeds {firstSeed}-{lastSeed}: median kl={median:F4}, min {sorted[0]:F4}, max {sorted[^1]:F4}, {kls.Count(k => k <= 0.01)} of {kls.Count} at ≤ 0.01"));
        return 0;
    }

    /// <summary>Runs the PyTorch anchor, echoes its line with the exact KL added, and returns its training seconds.</summary>
    private static double? RunAnchor(string python, string script, int iterations, int layers, int batch, int threads)
    {
        var run = PythonProcess.Run(python, new object[] { script, iterations, layers, batch, threads }.Select(a => Convert.ToString(a, CultureInfo.InvariantCulture)!));
        if (run is not var (exitCode, output, errors)) return null;
        var seconds = Regex.Match(output, @"seconds=([0-9.]+)");
        var negElbo = Regex.Match(output, @"neg_elbo=(-?[0-9.]+)");
        if (exitCode != 0 || !seconds.Success || !negElbo.Success)
        {
            Console.Error.WriteLine($"error: the anchor failed (exit {exitCode}): {output.Trim()} {errors.Trim()}");
            return null;
        }
        // The script prints E_q[log q − log p̃] on 20,000 draws; KL adds the ring's log Z.
        double kl = double.Parse(negElbo.Groups[1].Value, CultureInfo.InvariantCulture) + TargetGallery.Create("ring").LogNormalizer!.Value;
        Console.WriteLine($"anchor: {output.Trim()} kl={kl:F4} (20,000 draws)");
        return double.Parse(seconds.Groups[1].Value, CultureInfo.InvariantCulture);
    }
}
