using System.Globalization;
using System.Text;
using Microsoft.ML.NormalizingFlows.Diagnostics;

namespace Microsoft.ML.NormalizingFlows.Modeling;

/// <summary>One row of a <see cref="PosteriorSummary"/>: a parameter entry's moments and quantiles from q's draws, raw and PSIS-reweighted.</summary>
public sealed record PosteriorSummaryRow(
    string Name,
    double Mean, double Sd, double Q5, double Q50, double Q95, double McseMean, double Ess,
    double WeightedMean, double WeightedSd, double WeightedQ5, double WeightedQ50, double WeightedQ95, double WeightedMcseMean, double WeightedEss);

/// <summary>
/// ArviZ-style summary of a posterior approximation: per entry the mean, sd, 5/50/95 % quantiles, the Monte Carlo
/// standard error of the mean and the effective sample size, from q's raw draws (independent: ESS = S) and
/// PSIS-reweighted towards p (ESS = 1/Σw̃²), with the draws' k̂ and the fit's verdict.
/// </summary>
public sealed class PosteriorSummary
{
    internal PosteriorSummary(IReadOnlyList<PosteriorSummaryRow> rows, double paretoK, FitVerdict? verdict)
    {
        Rows = rows;
        ParetoK = paretoK;
        Verdict = verdict;
    }

    public IReadOnlyList<PosteriorSummaryRow> Rows { get; }

    /// <summary>k̂ of the draws' importance ratios (reweighted columns are trustworthy while it is below 0.7).</summary>
    public double ParetoK { get; }

    public FitVerdict? Verdict { get; }

    public PosteriorSummaryRow this[string name] => Rows.FirstOrDefault(r => r.Name == name)
        ?? throw new KeyNotFoundException($"No entry '{name}' in the summary. Entries: {string.Join(", ", Rows.Select(r => r.Name))}.");

    internal static PosteriorSummary From(IReadOnlyList<(string Name, double[] Values)> entries, IReadOnlyList<double> weights, double paretoK, FitVerdict? verdict)
    {
        var uniform = Enumerable.Repeat(1.0 / weights.Count, weights.Count).ToArray();
        double weightedEss = ImportanceWeights.EffectiveSampleSize(weights);
        var rows = entries.Select(e =>
        {
            var raw = Describe(e.Values, uniform);
            var weighted = Describe(e.Values, weights);
            return new PosteriorSummaryRow(e.Name, raw.Mean, raw.Sd, raw.Q5, raw.Q50, raw.Q95, raw.Mcse, weights.Count,
                weighted.Mean, weighted.Sd, weighted.Q5, weighted.Q50, weighted.Q95, weighted.Mcse, weightedEss);
        }).ToArray();
        return new PosteriorSummary(rows, paretoK, verdict);
    }

    private static (double Mean, double Sd, double Q5, double Q50, double Q95, double Mcse) Describe(double[] values, IReadOnlyList<double> weights)
    {
        var mean = ImportanceWeights.Expectation(weights, values);
        double variance = 0, total = 0;
        for (int i = 0; i < values.Length; i++)
        {
            if (weights[i] == 0) continue;
            variance += weights[i] * (values[i] - mean.Mean) * (values[i] - mean.Mean);
            total += weights[i];
        }
        var order = Enumerable.Range(0, values.Length).Where(i => weights[i] > 0).OrderBy(i => values[i]).ToArray();
        double Quantile(double p)
        {
            // Weighted quantile: the first value whose cumulative weight reaches p (the usual inverse of the weighted ECDF).
            double cumulative = 0;
            foreach (var i in order)
            {
                cumulative += weights[i] / total;
                if (cumulative >= p) return values[i];
            }
            return values[order[^1]];
        }
        return (mean.Mean, Math.Sqrt(variance / total), Quantile(0.05), Quantile(0.5), Quantile(0.95), mean.StandardError);
    }

    /// <summary>The table as text (one row per entry; raw draws, then PSIS-reweighted).</summary>
    public string Format()
    {
        var c = CultureInfo.InvariantCulture;
        int width = Math.Max(8, Rows.Max(r => r.Name.Length) + 1);
        var text = new StringBuilder();
        text.AppendLine(c, $"{"".PadRight(width)}{"mean",10}{"sd",10}{"5%",10}{"50%",10}{"95%",10}{"mcse",9}{"ess",8}  |{"psis mean",10}{"sd",10}{"5%",10}{"50%",10}{"95%",10}{"mcse",9}{"ess",8}");
        foreach (var r in Rows)
            text.AppendLine(c, $"{r.Name.PadRight(width)}{r.Mean,10:G4}{r.Sd,10:G4}{r.Q5,10:G4}{r.Q50,10:G4}{r.Q95,10:G4}{r.McseMean,9:G2}{r.Ess,8:F0}  |" +
                               $"{r.WeightedMean,10:G4}{r.WeightedSd,10:G4}{r.WeightedQ5,10:G4}{r.WeightedQ50,10:G4}{r.WeightedQ95,10:G4}{r.WeightedMcseMean,9:G2}{r.WeightedEss,8:F0}");
        text.Append(c, $"k̂ = {ParetoK:F3}{(Verdict is FitVerdict v ? $", verdict {v}" : "")} (use the PSIS columns when k̂ ≥ 0.5; neither is verified above 0.7)");
        return text.ToString();
    }

    public override string ToString() => Format();
}
