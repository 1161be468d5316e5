using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Modeling;

/// <summary>
/// "mrp": the seeds' workflow on shared/data/mrp — the multilevel model fitted with the default recipe (and the
/// Gaussian baselines), poststratified over the census table, each state's estimate and the parameters compared
/// with the NUTS reference; the whole recipe's wall time against NUTS's.
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterMrp() => Add("mrp", "MRP vs NUTS: [flow|full-rank|mean-field|all] [--draws N] [--threads N] [--output DIR] [--iw K] [--flow-batch N] [--flow-steps N] [--flow-setting key=value]… [--serial]", Mrp);

    private static int Mrp(string[] args)
    {
        var families = new List<ApproximationFamily>();
        int draws = 4_000, threads = 1;
        string output = "mrp-output";
        var options = new PosteriorFitOptions { Threads = threads };
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--draws": draws = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--threads": options.Threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                // Departures from the default recipe, for exploring it; the figures in docs/models.md use none of them.
                case "--iw": options.FlowObjective = new Microsoft.ML.NormalizingFlows.Training.ImportanceWeightedElboObjective(int.Parse(args[++i], CultureInfo.InvariantCulture), Microsoft.ML.NormalizingFlows.Training.GradientEstimator.DoublyReparameterized); break;
                case "--flow-batch": options.FlowBatchSize = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--flow-steps": options.FlowIterations = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--flow-setting":
                    var pair = args[++i].Split('=', 2);
                    (options.FlowSettings ??= new())[pair[0]] = pair[1];
                    break;
                case "--serial": options.ParallelFlowFits = false; break;
                case "--output": output = args[++i]; break;
                case "flow": families.Add(ApproximationFamily.Flow); break;
                case "full-rank": families.Add(ApproximationFamily.FullRankGaussian); break;
                case "mean-field": families.Add(ApproximationFamily.MeanFieldGaussian); break;
                case "all": families.AddRange(new[] { ApproximationFamily.Flow, ApproximationFamily.FullRankGaussian, ApproximationFamily.MeanFieldGaussian }); break;
                default: throw new FormatException($"unknown argument '{args[i]}'");
            }
        }
        if (families.Count == 0) families.Add(ApproximationFamily.Flow);
        var surveyPath = FindUpward(Path.Combine("shared", "data", "mrp", "survey.csv"));
        if (surveyPath is null) { Console.Error.WriteLine("error: shared/data/mrp was not found above this folder."); return 2; }
        string dir = Path.GetDirectoryName(surveyPath)!;
        var ml = new MLContext(seed: 1);
        var model = MrpModel.Create(MrpModel.Read(ml, surveyPath), MrpModel.Read(ml, Path.Combine(dir, "poststrat.csv")));
        var states = ReadCsv(Path.Combine(dir, "reference_states.csv"));
        var parameters = ReadCsv(Path.Combine(dir, "reference_parameters.csv"));
        Console.WriteLine($"MRP: {model.Dimension} parameters, 6,000 respondents, 12,000 cells; NUTS reference 2,195 s (reference_run.txt)");
        foreach (var family in families)
        {
            var clock = Stopwatch.StartNew();
            options.Family = family;
            var fit = model.Fit(options);
            var sample = fit.Draws(draws);
            var estimates = sample.Generate(MrpModel.Poststratify);
            clock.Stop();
            Console.WriteLine($"== {family}: {fit.Elapsed.TotalSeconds:F1} s fit ({clock.Elapsed.TotalSeconds:F1} s with {draws} draws and poststratification); k̂ {fit.Report.VerdictParetoK:F2}, {fit.Report.Verdict}");
            foreach (var stage in fit.Stages) Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   {stage.Name}: {stage.Elapsed.TotalSeconds:F1} s, ELBO {stage.Elbo:F2}, {stage.Detail}"));
            var items = new List<Microsoft.ML.NormalizingFlows.Plotting.IntervalComparisonPlot.Item>();
            int statesWithin = 0;
            double worstStateMean = 0, worstStateSd = 0;
            for (int s = 0; s < 50; s++)
            {
                var values = estimates.Select(e => e[s]).ToArray();
                var (mean, sd) = MeanSd(values);
                double refMean = states[s].Values["mean"], refSd = states[s].Values["sd"];
                double dm = Math.Abs(mean - refMean) / refSd, ds = sd / refSd - 1;
                if (dm <= 0.1 && Math.Abs(ds) <= 0.15) statesWithin++;
                var sorted = values.Order().ToArray();
                items.Add(new(states[s].Name, refMean, states[s].Values["q05"], states[s].Values["q95"], mean,
                    sorted[(int)(0.05 * (sorted.Length - 1))], sorted[(int)(0.95 * (sorted.Length - 1))]));
                worstStateMean = Math.Max(worstStateMean, dm);
                if (Math.Abs(ds) > Math.Abs(worstStateSd)) worstStateSd = ds;
            }
            var picture = Path.Combine(output, $"mrp-states-{family}.png");
            Microsoft.ML.NormalizingFlows.Plotting.IntervalComparisonPlot.Save(picture, items,
                $"MRP: each state's poststratified estimate, mean and 90 % interval ({family} vs NUTS)", "NUTS (Stan)", family.ToString(), "support", "state (ordered by NUTS's estimate)");
            Console.WriteLine($"   wrote {Path.GetFullPath(picture)}");
            var (nationMean, nationSd) = MeanSd(estimates.Select(e => e[50]).ToArray());
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"   states within 0.1 NUTS sd and 15 %: {statesWithin}/50; worst mean {worstStateMean:F3} sd, worst sd {worstStateSd:P1}; national {nationMean:F4} ± {nationSd:F4} (NUTS 0.5398 ± 0.0068)"));
            Console.WriteLine($"   {"parameter",-14}{"mean",10}{"NUTS",10}{"Δ/sd",8}{"sd",10}{"NUTS sd",10}{"Δsd",8}");
            var summary = sample.Summary(fit.Report.Verdict);
            foreach (var p in parameters.Where(p => p.Name is "alpha" or "b_male" or "b_rep" || p.Name.StartsWith("sd_", StringComparison.Ordinal)))
            {
                var row = summary[p.Name];
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"   {p.Name,-14}{row.Mean,10:F4}{p.Values["mean"],10:F4}{Math.Abs(row.Mean - p.Values["mean"]) / p.Values["sd"],8:F3}{row.Sd,10:F4}{p.Values["sd"],10:F4}{row.Sd / p.Values["sd"] - 1,8:P1}"));
            }
        }
        return 0;
    }

    private static (double Mean, double Sd) MeanSd(double[] values)
    {
        double mean = values.Average();
        return (mean, Math.Sqrt(values.Select(v => (v - mean) * (v - mean)).Sum() / (values.Length - 1)));
    }

    /// <summary>
    /// A small CSV of one name column and numbers. Split by hand, not with ML.NET's text loader: the reference files
    /// write matrix entries' names unquoted with a comma inside (z_age_educ[1,1]), so the name is everything before
    /// the header's count of numeric fields, counted from the right.
    /// </summary>
    private static List<(string Name, Dictionary<string, double> Values)> ReadCsv(string path)
    {
        var lines = File.ReadAllLines(path);
        var header = lines[0].Split(',');
        int numbers = header.Length - 1;
        var rows = new List<(string, Dictionary<string, double>)>();
        foreach (var line in lines.Skip(1).Where(l => l.Length > 0))
        {
            var fields = line.Split(',');
            string name = string.Join(",", fields[..^numbers]).Trim('"');
            var values = new Dictionary<string, double>();
            for (int j = 0; j < numbers; j++)
                values[header[j + 1]] = double.Parse(fields[fields.Length - numbers + j], NumberStyles.Float, CultureInfo.InvariantCulture);
            rows.Add((name, values));
        }
        return rows;
    }
}
