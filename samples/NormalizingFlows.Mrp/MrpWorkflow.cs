using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.NormalizingFlows.Modeling;
using Microsoft.ML.NormalizingFlows.Plotting;

/// <summary>
/// The MRP workflow on shared/data/mrp: fit the model, poststratify every draw over the census table, and compare
/// each state's estimate, the national one and the parameters with the NUTS reference (a table and a PNG).
/// Shared by the sample (Program.cs) and the bench's mrp verb.
/// </summary>
internal static class MrpWorkflow
{
    /// <summary>shared/data/mrp (the folder of survey.csv), found walking up from the current folder, then from the program's own.</summary>
    public static string? FindData() =>
        SharedFiles.FindUpward(Path.Combine("shared", "data", "mrp", "survey.csv")) is { } survey ? Path.GetDirectoryName(survey) : null;

    /// <summary>What one family's fit showed against NUTS.</summary>
    public sealed record Outcome(ApproximationFamily Family, double Seconds, double ParetoK, int StatesWithin, double WorstStateMean, double WorstStateSd,
        double NationalMean, double NationalSd, IReadOnlyDictionary<string, (double MeanGap, double SdRatio)> Parameters, string Picture);

    /// <summary>Fits each family with <paramref name="options"/> (its Family set in turn), prints the comparison and writes a PNG per family.</summary>
    public static List<Outcome> Run(string dataDirectory, IEnumerable<ApproximationFamily> families, PosteriorFitOptions options, int draws, string output, bool printStates)
    {
        var ml = new MLContext(seed: 1);
        var model = MrpModel.Create(MrpModel.Read(ml, Path.Combine(dataDirectory, "survey.csv")), MrpModel.Read(ml, Path.Combine(dataDirectory, "poststrat.csv")));
        var states = ReadReference(Path.Combine(dataDirectory, "reference_states.csv"));
        var parameters = ReadReference(Path.Combine(dataDirectory, "reference_parameters.csv"));
        Console.WriteLine($"MRP: {model.Dimension} parameters, 6,000 respondents, 12,000 poststratification cells; NUTS reference 2,195 s (reference_run.txt)");
        var outcomes = new List<Outcome>();
        foreach (var family in families)
        {
            options.Family = family;
            var clock = Stopwatch.StartNew();
            var fit = model.Fit(options);
            var sample = fit.Draws(draws);
            var estimates = sample.Generate(MrpModel.Poststratify);
            clock.Stop();
            Console.WriteLine($"== {family}: {fit.Elapsed.TotalSeconds:F1} s fit ({clock.Elapsed.TotalSeconds:F1} s with {draws} draws and poststratification); k̂ {fit.Report.VerdictParetoK:F2}, {fit.Report.Verdict}");
            foreach (var stage in fit.Stages) Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   {stage.Name}: {stage.Elapsed.TotalSeconds:F1} s, ELBO {stage.Elbo:F2}, {stage.Detail}"));

            var items = new List<IntervalComparisonPlot.Item>();
            int statesWithin = 0;
            double worstStateMean = 0, worstStateSd = 0;
            if (printStates) Console.WriteLine($"   {"state",-6}{"NUTS mean",11}{"sd",8}{"90 % interval",18}{family + " mean",22}{"sd",8}{"90 % interval",18}{"Δ/sd",7}{"Δsd",8}");
            for (int s = 0; s < 50; s++)
            {
                var values = estimates.Select(e => e[s]).ToArray();
                var (mean, sd) = MeanSd(values);
                var reference = states[s].Values;
                double dm = Math.Abs(mean - reference["mean"]) / reference["sd"], ds = sd / reference["sd"] - 1;
                bool within = dm <= 0.1 && Math.Abs(ds) <= 0.15;
                if (within) statesWithin++;
                var sorted = values.Order().ToArray();
                double lo = sorted[(int)(0.05 * (sorted.Length - 1))], hi = sorted[(int)(0.95 * (sorted.Length - 1))];
                items.Add(new(states[s].Name, reference["mean"], reference["q05"], reference["q95"], mean, lo, hi));
                worstStateMean = Math.Max(worstStateMean, dm);
                if (Math.Abs(ds) > Math.Abs(worstStateSd)) worstStateSd = ds;
                if (printStates)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"   {states[s].Name,-6}{reference["mean"],11:F4}{reference["sd"],8:F4}{$"[{reference["q05"]:F3}, {reference["q95"]:F3}]",18}{mean,22:F4}{sd,8:F4}{$"[{lo:F3}, {hi:F3}]",18}{dm,7:F3}{ds,8:P1}{(within ? "" : "  ✗")}"));
            }
            Directory.CreateDirectory(output);
            var picture = Path.GetFullPath(Path.Combine(output, $"mrp-states-{family}.png"));
            IntervalComparisonPlot.Save(picture, items, $"MRP: each state's poststratified estimate, mean and 90 % interval ({family} vs NUTS)",
                "NUTS (Stan)", family.ToString(), "support", "state (ordered by NUTS's estimate)");
            Console.WriteLine($"   wrote {picture}");
            var (nationMean, nationSd) = MeanSd(estimates.Select(e => e[50]).ToArray());
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"   states within 0.1 NUTS sd and 15 %: {statesWithin}/50; worst mean {worstStateMean:F3} sd, worst sd {worstStateSd:P1}; national {nationMean:F4} ± {nationSd:F4} (NUTS 0.5398 ± 0.0068)"));

            Console.WriteLine($"   {"parameter",-14}{"mean",10}{"NUTS",10}{"Δ/sd",8}{"sd",10}{"NUTS sd",10}{"Δsd",8}");
            var summary = sample.Summary(fit.Report.Verdict);
            var gaps = new Dictionary<string, (double MeanGap, double SdRatio)>();
            foreach (var p in parameters.Where(p => p.Name != "lp__")) // Stan's log density, not a parameter
            {
                var name = p.Name.StartsWith("z_age_educ[", StringComparison.Ordinal) ? AgeEducEntry(p.Name) : p.Name;
                var row = summary[name];
                double gap = Math.Abs(row.Mean - p.Values["mean"]) / p.Values["sd"], ratio = row.Sd / p.Values["sd"] - 1;
                gaps[name] = (gap, ratio);
                bool scalar = !p.Name.Contains('[') || p.Name.StartsWith("z_region", StringComparison.Ordinal) || p.Name.StartsWith("z_age[", StringComparison.Ordinal)
                              || p.Name.StartsWith("z_eth", StringComparison.Ordinal) || p.Name.StartsWith("z_educ", StringComparison.Ordinal);
                if (scalar)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"   {name,-14}{row.Mean,10:F4}{p.Values["mean"],10:F4}{gap,8:F3}{row.Sd,10:F4}{p.Values["sd"],10:F4}{ratio,8:P1}"));
            }
            var stateEffects = gaps.Where(g => g.Key.StartsWith("z_state", StringComparison.Ordinal)).ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"   z_state (50): worst mean {stateEffects.Max(g => g.Value.MeanGap):F3} sd, sd from {stateEffects.Min(g => g.Value.SdRatio):P1} to {stateEffects.Max(g => g.Value.SdRatio):P1}; " +
                $"within 0.1 sd and 10 %: {stateEffects.Count(g => g.Value.MeanGap <= 0.1 && Math.Abs(g.Value.SdRatio) <= 0.10)}/50"));
            outcomes.Add(new Outcome(family, fit.Elapsed.TotalSeconds, fit.Report.VerdictParetoK, statesWithin, worstStateMean, worstStateSd, nationMean, nationSd, gaps, picture));
        }
        return outcomes;
    }

    /// <summary>Stan names the age × education effects as a matrix, z_age_educ[a,d]; the model has them as a vector of 30, row-major.</summary>
    private static string AgeEducEntry(string stanName)
    {
        var indices = stanName["z_age_educ[".Length..^1].Split(',').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        return $"z_age_educ[{(indices[0] - 1) * 5 + indices[1]}]";
    }

    private static (double Mean, double Sd) MeanSd(double[] values)
    {
        double mean = values.Average();
        return (mean, Math.Sqrt(values.Select(v => (v - mean) * (v - mean)).Sum() / (values.Length - 1)));
    }

    /// <summary>
    /// A reference file: a name column, then numbers. Split by hand, not with ML.NET's text loader: the files write
    /// matrix entries' names unquoted with a comma inside (z_age_educ[1,1]), so the name is everything before the
    /// header's count of numeric fields, counted from the right.
    /// </summary>
    public static List<(string Name, Dictionary<string, double> Values)> ReadReference(string path)
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
