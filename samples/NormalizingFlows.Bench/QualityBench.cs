using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.NormalizingFlows;
using Microsoft.ML.NormalizingFlows.Diagnostics;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// "quality": how close each flow gets to targets whose answer is known, within a wall-time budget per fit
/// (1 torch thread). Parts: 2d (exact KL on the 2-D gallery), funnel (spread of v in Neal's funnel),
/// gauss50 (exact KL on a 50-D dense Gaussian, condition number 100), eight-schools (posterior moments vs
/// posteriordb's reference), all. See docs/quality.md.
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterQuality() => Add("quality",
        "Fit quality within a time budget: 2d | funnel | gauss50 | eight-schools | all [--budget S] [--eval N] [--draws N] " +
        "[--reference PATH] [--seed N] [--flows a,b] [--targets a,b] [--iterations N] [--batch N] [--lr X] [--layers K] [--set k=v,...] [--float64] [--stl] [--anneal FRACTION]",
        RunQuality);

    /// <summary>One fit's recipe: a preset with its settings, at most <see cref="Iterations"/> Adam steps (cosine-decayed rate).</summary>
    private sealed record QualityRecipe(string Label, string Flow, int Layers, int Iterations, int Batch, double LearningRate,
        string Settings = "", bool Float64 = false, bool Stl = false, double Anneal = 0)
    {
        public IReadOnlyDictionary<string, string>? SettingsMap => Settings.Length == 0 ? null :
            Settings.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv.Length > 1 ? kv[1] : "");

        public override string ToString() =>
            string.Create(CultureInfo.InvariantCulture, $"{Flow} K={Layers}{(Settings.Length > 0 ? " " + Settings : "")}, {Iterations} it, batch {Batch}, lr {LearningRate:g3}{(Float64 ? ", float64" : "")}{(Stl ? ", STL gradient" : "")}{(Anneal > 0 ? $", β 0.1→1 over the first {Anneal:P0}" : "")}");
    }

    /// <summary>Command-line options of the verb; the overrides apply to every selected recipe (for tuning).</summary>
    private sealed class QualityArgs
    {
        public string Part = "all";
        public double BudgetSeconds = 60;
        public int EvalDraws = 50_000;
        public int PosteriorDraws = 100_000;
        public string? ReferencePath;
        public long Seed;
        public HashSet<string>? Flows, Targets;
        public int? Iterations, Batch, Layers;
        public double? LearningRate, Anneal;
        public string? Settings;
        public bool Float64, Stl;

        public static QualityArgs Parse(string[] args)
        {
            var a = new QualityArgs();
            int i = 0;
            if (args.Length > 0 && !args[0].StartsWith("--", StringComparison.Ordinal)) a.Part = args[i++].ToLowerInvariant();
            for (; i < args.Length; i++)
            {
                string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"Option {args[i]} needs a value.");
                double Real() => double.Parse(Next(), CultureInfo.InvariantCulture);
                int Int() => int.Parse(Next(), CultureInfo.InvariantCulture);
                HashSet<string> Set() => new(Next().Split(','), StringComparer.OrdinalIgnoreCase);
                switch (args[i])
                {
                    case "--budget": a.BudgetSeconds = Real(); break;
                    case "--eval": a.EvalDraws = Int(); break;
                    case "--draws": a.PosteriorDraws = Int(); break;
                    case "--reference": a.ReferencePath = Next(); break;
                    case "--seed": a.Seed = long.Parse(Next(), CultureInfo.InvariantCulture); break;
                    case "--flows": a.Flows = Set(); break;
                    case "--targets": a.Targets = Set(); break;
                    case "--iterations": a.Iterations = Int(); break;
                    case "--batch": a.Batch = Int(); break;
                    case "--layers": a.Layers = Int(); break;
                    case "--lr": a.LearningRate = Real(); break;
                    case "--set": a.Settings = Next(); break;
                    case "--float64": a.Float64 = true; break;
                    case "--stl": a.Stl = true; break;
                    case "--anneal": a.Anneal = Real(); break;
                    default: throw new ArgumentException($"Unknown option '{args[i]}'.");
                }
            }
            return a;
        }

        public IEnumerable<QualityRecipe> Select(IEnumerable<QualityRecipe> recipes) => recipes
            .Where(r => Flows is null || Flows.Contains(r.Label) || Flows.Contains(r.Flow))
            .Select(r => r with
            {
                Iterations = Iterations ?? r.Iterations,
                Batch = Batch ?? r.Batch,
                Layers = Layers ?? r.Layers,
                LearningRate = LearningRate ?? r.LearningRate,
                Settings = Settings ?? r.Settings,
                Float64 = Float64 || r.Float64,
                Stl = Stl || r.Stl,
                Anneal = Anneal ?? r.Anneal,
            });

        public bool Wants(string target) => Targets is null || Targets.Contains(target);
    }

    /// <summary>A trained flow; <see cref="Timed"/>: the budget, not the iteration count, ended the fit.</summary>
    private sealed record QualityFitResult(FlowDistribution Q, FitResult Fit, bool Timed)
    {
        public double Seconds => Fit.Elapsed.TotalSeconds;
        public string Time => string.Create(CultureInfo.InvariantCulture, $"{Seconds:F1} s, {Fit.Iterations} it{(Timed ? " (budget)" : "")}");

        /// <summary>Training's wall time stayed within the budget (cancellation is checked before each step: allow that step).</summary>
        public bool WithinBudget(QualityArgs a) => Seconds <= a.BudgetSeconds + 0.5;
    }

    /// <summary>
    /// The tempered ELBO E_q[β log p̃ − log q] (Rezende &amp; Mohamed 2015 anneal the same way): β rises linearly
    /// from 0.1 to 1 over the first <paramref name="fraction"/> of the fit (iterations or budget, whichever is
    /// further along). A flat p̃^β early lets q spread over every branch of a forked density before the branches
    /// sharpen; plain reverse KL tends to settle on one branch and never see the other. The reported ELBO is the
    /// untempered one, so keep-best and the trace mean what they usually do.
    /// </summary>
    private sealed class AnnealedElbo(double fraction, int iterations, TimeSpan budget) : VariationalObjective
    {
        private const double StartBeta = 0.1;
        private readonly Stopwatch clock = Stopwatch.StartNew();
        private int step;

        public override ObjectiveTerms Compute(FlowDistribution q, Target target, int batchSize, TorchSharp.torch.Generator generator)
        {
            double progress = Math.Max(step++ / (double)iterations, clock.Elapsed / budget);
            double beta = Math.Min(1, StartBeta + (1 - StartBeta) * progress / fraction);
            var (z, logQ) = q.Sample(batchSize, generator);
            var logP = target.Evaluate(z);
            var loss = -(beta * logP - logQ).mean();
            return new ObjectiveTerms(loss, logP, logQ, (logP - logQ).mean().detach());
        }
    }

    private static int RunQuality(string[] args)
    {
        QualityArgs a;
        try { a = QualityArgs.Parse(args); }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }
        var parts = new Dictionary<string, Func<QualityArgs, int>>
        {
            ["2d"] = RunQuality2D,
            ["funnel"] = RunQualityFunnel,
            ["gauss50"] = RunQualityGauss50,
            ["eight-schools"] = RunQualityEightSchools,
        };
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"quality {a.Part}: budget {a.BudgetSeconds:g} s per fit, 1 torch thread, seed {a.Seed}, {Environment.ProcessorCount} cores, {DateTime.Now:yyyy-MM-dd HH:mm}"));
        if (a.Part == "all") return parts.Values.Select(run => run(a)).Max();
        if (parts.TryGetValue(a.Part, out var part)) return part(a);
        Console.Error.WriteLine($"Unknown quality part '{a.Part}'; one of: {string.Join(", ", parts.Keys)}, all.");
        return 2;
    }

    /// <summary>Builds the recipe's flow and trains it with a cosine decay to 1% that anneals by iterations or time,
    /// whichever runs out first (the trainer's TimeLimit); at the budget the fit stops with the best parameters so far
    /// and the table marks its time "(budget)".</summary>
    private static QualityFitResult TrainWithinBudget(Target target, QualityRecipe r, QualityArgs a)
    {
        var q = FlowFactory.Create(r.Flow, target.Dimension, r.Layers, a.Seed, r.SettingsMap);
        var budget = TimeSpan.FromSeconds(a.BudgetSeconds);
        var options = new TrainerOptions
        {
            Iterations = r.Iterations,
            BatchSize = r.Batch,
            LearningRate = r.LearningRate,
            Schedule = LearningRateSchedule.Cosine(0.01),
            TimeLimit = budget,
            Precision = r.Float64 ? Precision.Float64 : Precision.Float32,
            Objective = r.Anneal > 0 ? new AnnealedElbo(r.Anneal, r.Iterations, budget)
                : r.Stl ? new ImportanceWeightedElboObjective(1, GradientEstimator.StickingTheLanding) : null,
            Threads = 1,
            Seed = a.Seed,
            ReportEvery = int.MaxValue,
            ThrowOnDivergence = false,
        };
        var fit = VariationalTrainer.Fit(q, target, options);
        return new QualityFitResult(q, fit, fit.Status == FitStatus.TimeLimitReached);
    }

    /// <summary>Prints each selected recipe, then yields it with its fit.</summary>
    private static IEnumerable<(QualityRecipe Recipe, QualityFitResult Fit)> FitEach(Target target, IEnumerable<QualityRecipe> recipes, QualityArgs a)
    {
        foreach (var r in a.Select(recipes))
        {
            Console.WriteLine($"  {r.Label}: {r}");
            yield return (r, TrainWithinBudget(target, r, a));
        }
    }

    private static string Invariant(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    // ---------------------------------------------------------------- 2-D gallery: exact KL by quadrature log Z

    private static readonly string[] QualityTargets2D = { "u1", "ring", "u2-proper", "u3-proper", "u4-proper", "two-moons" };

    private static IEnumerable<QualityRecipe> Recipes2D() => new QualityRecipe[]
    {
        new("planar-32", "planar", 32, 20_000, 256, 2e-3),
        new("realnvp", "realnvp", 8, 6_000, 256, 1e-3, "hidden=64"),
        new("iaf", "iaf", 6, 5_000, 256, 1e-3, "hidden=64"),
        new("nsf", "nsf-coupling", 6, 4_000, 256, 1e-3, "hidden=64,bins=8,bound=6"),
    };

    private static int RunQuality2D(QualityArgs a)
    {
        var recipes = a.Select(Recipes2D()).ToList();
        var targets = QualityTargets2D.Where(a.Wants).ToList();
        Console.WriteLine();
        Console.WriteLine(Invariant($"## 2-D: exact KL(q‖p) nats ± MC se ({a.EvalDraws:N0} draws, log Z by quadrature) and wall time per fit"));
        foreach (var r in recipes) Console.WriteLine($"  {r.Label}: {r}");
        var table = new List<string[]>();
        bool allPass = true;
        foreach (var name in targets)
        {
            var target = TargetGallery.Create(name);
            var cells = new List<string> { name };
            (double Kl, string Label, bool InTime) best = (double.PositiveInfinity, "", false);
            foreach (var r in recipes)
            {
                var fit = TrainWithinBudget(target, r, a);
                var estimate = Evaluation.EstimateElbo(fit.Q, target, a.EvalDraws);
                double kl = estimate.Kl!.Value;
                cells.Add(Invariant($"{kl:F4} ± {estimate.StandardError:F4} ({fit.Seconds:F0} s)"));
                Console.WriteLine(Invariant($"  {name,-10} {r.Label,-10} KL {kl:F4} ± {estimate.StandardError:F4}  {fit.Seconds,6:F1} s  {fit.Fit.Iterations} it  status {fit.Fit.Status}  skipped {fit.Fit.SkippedSteps}"));
                if (kl < best.Kl) best = (kl, r.Label, fit.WithinBudget(a));
            }
            bool pass = best.Kl <= 0.01 && best.InTime;
            allPass &= pass;
            cells.Add(Invariant($"{best.Label} {best.Kl:F4} {(pass ? "pass" : "FAIL")}"));
            table.Add(cells.ToArray());
        }
        Console.WriteLine();
        PrintTable(new[] { "target" }.Concat(recipes.Select(r => r.Label)).Append("best (goal KL ≤ 0.01 within budget)").ToArray(), table);
        return allPass ? 0 : 1;
    }

    // ---------------------------------------------------------------- Neal's funnel: the spread of v

    /// <summary>The classic VI families, for contrast in every part beyond 2-D (cheap: ~1 ms per step).</summary>
    private static readonly QualityRecipe[] GaussianRecipes =
    {
        new("mean-field", "mean-field", 1, 10_000, 256, 1e-2),
        new("full-rank", "full-rank", 1, 10_000, 256, 5e-3),
    };

    private static IEnumerable<QualityRecipe> RecipesFunnel() => GaussianRecipes.Concat(new QualityRecipe[]
    {
        new("iaf", "iaf", 6, 8_000, 256, 1e-3, "hidden=64"),
        new("nsf-ar", "nsf-autoregressive", 2, 3_500, 256, 1e-3, "hidden=64,bins=8,bound=8"),
        new("realnvp", "realnvp", 6, 4_500, 256, 1e-3, "hidden=64,mask=random"),
    });

    private static int RunQualityFunnel(QualityArgs a)
    {
        var target = new FunnelTarget();
        double q95 = 3 * 1.6448536269514722;
        Console.WriteLine();
        Console.WriteLine(Invariant($"## Funnel (d = {target.Dimension}): v ~ N(0, 3²); truth sd(v) = 3, q05/q95 = ∓{q95:F3}; exact KL (log Z = 0); {a.PosteriorDraws:N0} draws"));
        var table = new List<string[]>();
        foreach (var (r, fit) in FitEach(target, RecipesFunnel(), a))
        {
            var sample = ImportanceSample.Draw(fit.Q, target, a.PosteriorDraws, a.Seed + 1);
            var raw = Moments(sample, 0, null);
            var psis = sample.Psis;
            var weighted = Moments(sample, 0, psis.Weights);
            double kl = -Mean(sample.LogRatios);
            table.Add(new[]
            {
                r.Label, Invariant($"{kl:F3}"), Invariant($"{raw.Sd:F3}"), Invariant($"{raw.Q05:F2} / {raw.Q95:F2}"),
                Invariant($"{weighted.Sd:F3}"), Invariant($"{weighted.Q05:F2} / {weighted.Q95:F2}"), Invariant($"{psis.ParetoK:F2}"), fit.Time,
            });
        }
        Console.WriteLine();
        PrintTable(new[] { "flow", "KL", "sd(v) q", "q05 / q95 q", "sd(v) PSIS", "q05 / q95 PSIS", "k̂", "time" }, table);
        return 0;
    }

    // ---------------------------------------------------------------- 50-D Gaussian, dense covariance, condition number 100

    private static IEnumerable<QualityRecipe> RecipesGauss50() => GaussianRecipes.Concat(new QualityRecipe[]
    {
        new("realnvp", "realnvp", 6, 3_000, 256, 1e-3, "hidden=128,mask=random"),
        new("iaf", "iaf", 4, 5_000, 256, 1e-3, "hidden=128"),
        new("nsf", "nsf-coupling", 4, 2_500, 256, 1e-3, "hidden=128,mask=random,bound=6"),
    });

    private static int RunQualityGauss50(QualityArgs a)
    {
        var target = new CorrelatedGaussianTarget(50, 100, seed: 0);
        Console.WriteLine();
        Console.WriteLine(Invariant($"## Gaussian d = 50, dense covariance, condition number {target.ConditionNumber:g} (seed 0): exact KL ({a.EvalDraws:N0} draws)"));
        var table = new List<string[]>();
        foreach (var (r, fit) in FitEach(target, RecipesGauss50(), a))
        {
            var estimate = Evaluation.EstimateElbo(fit.Q, target, a.EvalDraws);
            table.Add(new[] { r.Label, Invariant($"{estimate.Kl!.Value:F4} ± {estimate.StandardError:F4}"), Invariant($"{fit.Fit.Iterations}"), fit.Time });
        }
        Console.WriteLine();
        PrintTable(new[] { "flow", "KL(q‖p)", "iterations", "time" }, table);
        return 0;
    }

    // ---------------------------------------------------------------- eight schools vs posteriordb

    private const string EightSchoolsReference = "shared/data/posteriordb/eight_schools_noncentered.json";

    private static IEnumerable<QualityRecipe> RecipesEightSchools() => GaussianRecipes.Concat(new QualityRecipe[]
    {
        new("realnvp", "realnvp", 6, 3_500, 256, 1e-3, "hidden=64,mask=random"),
        new("nsf", "nsf-coupling", 3, 2_000, 256, 1e-3, "hidden=64,mask=random,bound=8"),
        new("iaf", "iaf", 6, 5_000, 256, 1e-3, "hidden=64"),
    });

    private static int RunQualityEightSchools(QualityArgs a)
    {
        string? path = a.ReferencePath ?? SharedFiles.FindUpward(EightSchoolsReference);
        if (path is null || !File.Exists(path))
        {
            Console.Error.WriteLine(a.ReferencePath is null
                ? $"Cannot find {EightSchoolsReference} above the current directory or the executable; pass --reference PATH."
                : $"Reference file '{a.ReferencePath}' does not exist.");
            return 2;
        }
        var reference = ReadUnconstrainedReference(path);
        var target = new EightSchoolsTarget();
        var names = EightSchoolsTarget.ParameterNames;
        Console.WriteLine();
        Console.WriteLine(Invariant($"## Eight schools (non-centred): posterior moments vs posteriordb ({path}); {a.PosteriorDraws:N0} draws from q"));
        Console.WriteLine("   pass: every |mean − ref| ≤ 0.1 ref sd and every |sd/ref sd − 1| ≤ 10% (raw q draws; PSIS-reweighted shown alongside)");
        var table = new List<string[]>();
        bool anyPass = false;
        foreach (var (r, fit) in FitEach(target, RecipesEightSchools(), a))
        {
            var sample = ImportanceSample.Draw(fit.Q, target, a.PosteriorDraws, a.Seed + 1);
            var psis = sample.Psis;
            var rawScore = Score(sample, null);
            var psisScore = Score(sample, psis.Weights);
            Console.WriteLine("    parameter        mean err (ref sd)   sd err    [PSIS: mean err, sd err]");
            for (int j = 0; j < names.Count; j++)
                Console.WriteLine($"    {names[j],-16} {Signed(rawScore.MeanErrors[j], "0.000"),10} {Signed(rawScore.SdErrors[j], "0.0%"),12}    [{Signed(psisScore.MeanErrors[j], "0.000")}, {Signed(psisScore.SdErrors[j], "0.0%")}]");
            bool pass = rawScore.Pass && fit.WithinBudget(a);
            anyPass |= pass;
            table.Add(new[]
            {
                r.Label, rawScore.WorstMean, rawScore.WorstSd, pass ? "pass" : "FAIL",
                psisScore.WorstMean, psisScore.WorstSd, psisScore.Pass ? "pass" : "FAIL", Invariant($"{psis.ParetoK:F2}"), fit.Time,
            });
        }
        Console.WriteLine();
        PrintTable(new[] { "method", "worst mean err (ref sd)", "worst sd err", "q", "PSIS worst mean", "PSIS worst sd", "PSIS", "k̂", "time" }, table);
        return anyPass ? 0 : 1;   // the Gaussian families are there for contrast: the goal is that some method passes

        (double[] MeanErrors, double[] SdErrors, string WorstMean, string WorstSd, bool Pass) Score(ImportanceSample sample, IReadOnlyList<double>? weights)
        {
            var meanErrors = new double[names.Count];
            var sdErrors = new double[names.Count];
            for (int j = 0; j < names.Count; j++)
            {
                var (refMean, refSd) = reference[names[j]];
                var m = Moments(sample, j, weights);
                meanErrors[j] = (m.Mean - refMean) / refSd;
                sdErrors[j] = m.Sd / refSd - 1;
            }
            int worstMean = ArgMaxAbs(meanErrors), worstSd = ArgMaxAbs(sdErrors);
            bool pass = meanErrors.All(e => Math.Abs(e) <= 0.1) && sdErrors.All(e => Math.Abs(e) <= 0.1);
            return (meanErrors, sdErrors, $"{Signed(meanErrors[worstMean], "0.000")} {names[worstMean]}",
                $"{Signed(sdErrors[worstSd], "0.0%")} {names[worstSd]}", pass);
        }
    }

    /// <summary>The reference posterior's mean and sd per unconstrained parameter ("unconstrained_parameters").</summary>
    private static Dictionary<string, (double Mean, double Sd)> ReadUnconstrainedReference(string path)
    {
        using var document = JsonDocument.Parse(File.ReadAllText(path));
        return document.RootElement.GetProperty("unconstrained_parameters").EnumerateArray().ToDictionary(
            p => p.GetProperty("name").GetString()!,
            p => (p.GetProperty("ref_mean").GetDouble(), p.GetProperty("ref_sd").GetDouble()));
    }

    // ---------------------------------------------------------------- small statistics and printing

    private readonly record struct Marginal(double Mean, double Sd, double Q05, double Q95);

    /// <summary>Mean, sd and 5%/95% quantiles of coordinate j, with normalized weights (null: equal weights).</summary>
    private static Marginal Moments(ImportanceSample sample, int j, IReadOnlyList<double>? weights)
    {
        int n = sample.Count;
        double W(int s) => weights is null ? 1.0 / n : weights[s];
        double mean = 0, second = 0;
        for (int s = 0; s < n; s++) { double x = sample[s, j]; mean += W(s) * x; }
        for (int s = 0; s < n; s++) { double x = sample[s, j] - mean; second += W(s) * x * x; }
        var order = Enumerable.Range(0, n).OrderBy(s => sample[s, j]).ToArray();
        double Quantile(double p)
        {
            double cumulative = 0;
            foreach (int s in order) if ((cumulative += W(s)) >= p) return sample[s, j];
            return sample[order[^1], j];
        }
        return new Marginal(mean, Math.Sqrt(second), Quantile(0.05), Quantile(0.95));
    }

    /// <summary>The value with an explicit sign, "+" when it rounds to zero (a plain "+0.0;-0.0" format prints "-+0.0%" for −0.0004).</summary>
    private static string Signed(double value, string format)
    {
        string magnitude = Math.Abs(value).ToString(format, CultureInfo.InvariantCulture);
        return (value < 0 && magnitude.Any(c => c is >= '1' and <= '9') ? "-" : "+") + magnitude;
    }

    private static double Mean(IReadOnlyList<double> values) => values.Where(double.IsFinite).Average();

    private static int ArgMaxAbs(double[] values) => Array.IndexOf(values, values.MaxBy(Math.Abs));

    /// <summary>A Markdown table (pastes into docs/quality.md as is).</summary>
    private static void PrintTable(string[] header, List<string[]> rows)
    {
        Console.WriteLine("| " + string.Join(" | ", header) + " |");
        Console.WriteLine("|" + string.Concat(header.Select(_ => " --- |")));
        foreach (var row in rows) Console.WriteLine("| " + string.Join(" | ", row) + " |");
    }
}
