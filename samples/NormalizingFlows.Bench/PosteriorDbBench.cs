using System.Globalization;
using Microsoft.ML.NormalizingFlows.Modeling;



/// <summary>
/// "posteriordb": the default posterior recipe, untuned, on eight_schools_noncentered, gp_regr and arK written with the
/// model API, against posteriordb's reference moments (10,000 NUTS draws): every parameter's mean error in reference
/// sds and sd error in %, the worst of each, the verdict and the wall time of the whole recipe.
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterPosteriorDb() => Add("posteriordb",
        "Default recipe vs posteriordb references: [NAME|all] [--family flow|full-rank|mean-field] [--seed S] [--threads N] [--flow-steps N] [--flow-permutation none|reverse|random|lu]",
        PosteriorDb);

    private static int PosteriorDb(string[] args)
    {
        string which = "all";
        var options = new PosteriorFitOptions { Threads = 1 };
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--family":
                    options.Family = args[++i] switch
                    {
                        "flow" => ApproximationFamily.Flow,
                        "full-rank" => ApproximationFamily.FullRankGaussian,
                        "mean-field" => ApproximationFamily.MeanFieldGaussian,
                        var other => throw new FormatException($"unknown family '{other}'"),
                    };
                    break;
                case "--seed": options.Seed = long.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--threads": options.Threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                // Departures from the default recipe, for exploring it (the figures in docs/models.md use none).
                case "--flow-steps": options.FlowIterations = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--flow-permutation": options.FlowPermutation = args[++i]; break;
                default: which = args[i]; break;
            }
        }
        var reference = SharedFiles.FindUpward(Path.Combine("shared", "data", "posteriordb", "eight_schools_noncentered.json"));
        if (reference is null) { Console.Error.WriteLine("error: shared/data/posteriordb was not found above this folder."); return 2; }
        PosteriorDbModels.Directory = Path.GetDirectoryName(reference)!;
        var names = which == "all" ? PosteriorDbModels.Names : new[] { which };
        if (names.Any(n => !PosteriorDbModels.Names.Contains(n))) { Console.Error.WriteLine($"error: models are {string.Join(", ", PosteriorDbModels.Names)} or all."); return 2; }
        bool allPass = true;
        foreach (var name in names)
        {
            var fit = PosteriorDbModels.Create(name).Fit(options);
            var summary = fit.Summary();
            Console.WriteLine($"== {name} ({options.Family}, seed {options.Seed}): {fit.Elapsed.TotalSeconds:F1} s");
            foreach (var stage in fit.Stages) Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   {stage.Name}: {stage.Elapsed.TotalSeconds:F1} s, ELBO {stage.Elbo:F3}, {stage.Detail}"));
            Console.WriteLine($"   {"parameter",-16}{"mean",10}{"ref",10}{"Δ/sd",8}{"sd",10}{"ref sd",10}{"Δsd",8}");
            (string Name, double Value) worstMean = ("", 0), worstSd = ("", 0);
            foreach (var (entry, mean, sd) in PosteriorDbModels.Reference(name))
            {
                var row = summary[entry];
                double dm = Math.Abs(row.Mean - mean) / sd, ds = row.Sd / sd - 1;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   {entry,-16}{row.Mean,10:F4}{mean,10:F4}{dm,8:F3}{row.Sd,10:F4}{sd,10:F4}{ds,8:P1}"));
                if (dm > worstMean.Value) worstMean = (entry, dm);
                if (Math.Abs(ds) > Math.Abs(worstSd.Value)) worstSd = (entry, ds);
            }
            bool pass = worstMean.Value <= 0.1 && Math.Abs(worstSd.Value) <= 0.10;
            allPass &= pass;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"   worst mean {worstMean.Name} {worstMean.Value:F3} sd, worst sd {worstSd.Name} {worstSd.Value:P1}; k̂ {fit.Report.VerdictParetoK:F2}, {fit.Report.Verdict}; {(pass ? "PASS" : "MISS")} (goal: 0.1 sd and 10 %)"));
        }
        return allPass ? 0 : 1;
    }
}
