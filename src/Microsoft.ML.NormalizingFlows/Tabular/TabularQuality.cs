using System.Globalization;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>How one column of synthetic rows compares with the real rows.</summary>
/// <param name="Name">The column.</param>
/// <param name="IsNumeric">Numeric (KS) or categorical (TV).</param>
/// <param name="Statistic">Kolmogorov–Smirnov distance (numeric columns) or total-variation distance (categorical).</param>
/// <param name="Violations">Synthetic values the real data rule out: negative numbers where the real column has none,
/// fractions in a column of whole numbers, levels the real column never has.</param>
public sealed record ColumnFidelity(string Name, bool IsNumeric, double Statistic, long Violations);

/// <summary>Distance to the closest record (DCR) on standardized columns: does the generator copy its training rows?</summary>
/// <param name="ShareCloserThanHoldout5thPercentile">Share of synthetic rows whose DCR to the training rows is below the 5th
/// percentile of the hold-out rows' DCR to the training rows (≈ 5 % for a generator that does not memorize).</param>
/// <param name="ShareNearerToTrainingSubset">Share of synthetic rows nearer to a random training subset of the hold-out's
/// size than to the hold-out (≈ 50 % without memorization).</param>
/// <param name="MedianSyntheticDcr">The median DCR of the synthetic rows to the training rows.</param>
/// <param name="MedianHoldoutDcr">The median DCR of the hold-out rows to the training rows.</param>
public sealed record PrivacyCheck(double ShareCloserThanHoldout5thPercentile, double ShareNearerToTrainingSubset, double MedianSyntheticDcr, double MedianHoldoutDcr);

/// <summary>Fidelity of synthetic rows to real rows: per-column marginals, pairwise rank dependence, violated constraints
/// and (with training rows) the distance to the closest record. <see cref="ToString"/> prints it as a table.</summary>
public sealed class TabularQualityReport
{
    internal TabularQualityReport(IReadOnlyList<ColumnFidelity> columns, double[,] spearmanGap, IReadOnlyList<string> names, PrivacyCheck? privacy)
    {
        Columns = columns;
        SpearmanGap = spearmanGap;
        Names = names;
        Privacy = privacy;
    }

    public IReadOnlyList<ColumnFidelity> Columns { get; }
    /// <summary>|ρ_real − ρ_synthetic| of Spearman's rank correlation for each pair of columns (categorical columns by
    /// their level codes: the given level order, or the real data's order of first appearance).</summary>
    public double[,] SpearmanGap { get; }
    public IReadOnlyList<string> Names { get; }
    public PrivacyCheck? Privacy { get; }
    /// <summary>Utility checks added with <see cref="AddUtility"/> (train on synthetic, test on real).</summary>
    public List<(string Name, double Real, double Synthetic)> Utility { get; } = new();

    public double WorstKs => Columns.Where(c => c.IsNumeric).Select(c => c.Statistic).DefaultIfEmpty(0).Max();
    public double WorstTotalVariation => Columns.Where(c => !c.IsNumeric).Select(c => c.Statistic).DefaultIfEmpty(0).Max();
    public long Violations => Columns.Sum(c => c.Violations);

    /// <summary>The largest Spearman gap and its pair.</summary>
    public (string A, string B, double Gap) WorstSpearmanGap
    {
        get
        {
            (string, string, double) worst = ("", "", 0);
            for (int i = 0; i < Names.Count; i++)
                for (int j = i + 1; j < Names.Count; j++)
                    if (SpearmanGap[i, j] > worst.Item3) worst = (Names[i], Names[j], SpearmanGap[i, j]);
            return worst;
        }
    }

    /// <summary>Records a train-on-synthetic-test-on-real result (see <see cref="TabularQuality.TrainOnSyntheticTestOnReal"/>).</summary>
    public TabularQualityReport AddUtility(string name, double real, double synthetic)
    {
        Utility.Add((name, real, synthetic));
        return this;
    }

    public override string ToString()
    {
        var text = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        text.AppendLine(string.Format(inv, "{0,-14} {1,-6} {2,9} {3,11}", "column", "test", "distance", "violations"));
        foreach (var c in Columns)
            text.AppendLine(string.Format(inv, "{0,-14} {1,-6} {2,9:F4} {3,11}", c.Name, c.IsNumeric ? "KS" : "TV", c.Statistic, c.Violations));
        var (a, b, gap) = WorstSpearmanGap;
        text.AppendLine(string.Format(inv, "worst KS {0:F4}, worst TV {1:F4}, worst Spearman gap {2:F4} ({3}, {4}), violations {5}", WorstKs, WorstTotalVariation, gap, a, b, Violations));
        if (Privacy is { } p)
            text.AppendLine(string.Format(inv, "DCR: {0:P1} of synthetic rows closer to training than the hold-out's 5th percentile; {1:P1} nearer to a training subset than to the hold-out; median DCR synthetic {2:F3}, hold-out {3:F3}",
                p.ShareCloserThanHoldout5thPercentile, p.ShareNearerToTrainingSubset, p.MedianSyntheticDcr, p.MedianHoldoutDcr));
        foreach (var (name, real, synthetic) in Utility)
            text.AppendLine(string.Format(inv, "{0}: trained on real {1:F4}, on synthetic {2:F4}, gap {3:F4}", name, real, synthetic, real - synthetic));
        return text.ToString();
    }
}

/// <summary>Compares synthetic rows with real ones (<see cref="Compare"/>), and trains a model on each to compare their use.</summary>
public static class TabularQuality
{
    /// <summary>
    /// Per-column KS / TV distances and violations, pairwise Spearman gaps and, when <paramref name="training"/> is given,
    /// the DCR privacy check (with <paramref name="real"/> as the hold-out). Columns: <paramref name="columns"/>, or every
    /// supported column of <paramref name="real"/>; the synthetic rows must have them with the same types.
    /// </summary>
    /// <param name="real">The real rows (the hold-out in a privacy check).</param>
    /// <param name="synthetic">The synthetic rows.</param>
    /// <param name="columns">The columns compared (null: all of the real rows' columns).</param>
    /// <param name="training">The training rows, for the DCR privacy check (null: no privacy check).</param>
    /// <param name="seed">Seeds the training subset of the privacy check.</param>
    /// <param name="levelOrders">Level orders of categorical columns for the rank correlations (ordered categories in their
    /// natural order); columns not listed use the real rows' order of first appearance.</param>
    public static TabularQualityReport Compare(IDataView real, IDataView synthetic, IReadOnlyList<string>? columns = null, IDataView? training = null, int seed = 0,
        IReadOnlyDictionary<string, string[]>? levelOrders = null)
    {
        ArgumentNullException.ThrowIfNull(real);
        ArgumentNullException.ThrowIfNull(synthetic);
        var names = (columns ?? real.Schema.Where(c => !c.IsHidden).Select(c => c.Name)).ToArray();
        var r = TableColumn.Read(real, names, nameof(real));
        var s = TableColumn.Read(synthetic, names, nameof(synthetic));
        for (int j = 0; j < names.Length; j++)
            if (r[j].Type != s[j].Type)
                throw new ArgumentException($"Column '{names[j]}' is {r[j].Type} in the real rows but {s[j].Type} in the synthetic rows.", nameof(synthetic));
        var fidelity = new List<ColumnFidelity>();
        var codesReal = new double[names.Length][];
        var codesSynthetic = new double[names.Length][];
        for (int j = 0; j < names.Length; j++)
        {
            if (r[j].Numbers is { } rn)
            {
                var sn = s[j].Numbers!;
                var present = rn.Where(v => !double.IsNaN(v)).ToArray();
                bool nonNegative = present.All(v => v >= 0), whole = present.All(v => v == Math.Floor(v));
                long violations = sn.LongCount(v => !double.IsNaN(v) && (nonNegative && v < 0 || whole && v != Math.Floor(v)));
                fidelity.Add(new ColumnFidelity(names[j], true, KolmogorovSmirnov(present, sn.Where(v => !double.IsNaN(v)).ToArray()), violations));
                codesReal[j] = rn;
                codesSynthetic[j] = sn;
            }
            else
            {
                var rl = r[j].Levels!;
                var sl = s[j].Levels!;
                var order = (levelOrders is not null && levelOrders.TryGetValue(names[j], out var given) ? given.Concat(rl.Distinct().Except(given)) : rl.Distinct()).Select((l, i) => (l, i)).ToDictionary(p => p.l, p => (double)p.i, StringComparer.Ordinal);
                fidelity.Add(new ColumnFidelity(names[j], false, TotalVariation(rl, sl), sl.LongCount(l => !order.ContainsKey(l))));
                codesReal[j] = rl.Select(l => order[l]).ToArray();
                codesSynthetic[j] = sl.Select(l => order.TryGetValue(l, out var c) ? c : double.NaN).ToArray();
            }
        }
        var ranksReal = codesReal.Select(Ranks).ToArray();
        var ranksSynthetic = codesSynthetic.Select(Ranks).ToArray();
        var gap = new double[names.Length, names.Length];
        for (int i = 0; i < names.Length; i++)
            for (int j = i + 1; j < names.Length; j++)
                gap[i, j] = gap[j, i] = Math.Abs(Pearson(ranksReal[i], ranksReal[j]) - Pearson(ranksSynthetic[i], ranksSynthetic[j]));
        PrivacyCheck? privacy = null;
        if (training is not null)
        {
            var t = TableColumn.Read(training, names, nameof(training));
            privacy = Privacy(t, r, s, seed);
        }
        return new TabularQualityReport(fidelity, gap, names, privacy);
    }

    /// <summary>
    /// Train on synthetic, test on real: fits <paramref name="train"/> on <paramref name="realTraining"/> and on
    /// <paramref name="synthetic"/>, scores both models on <paramref name="holdout"/> with <paramref name="score"/>
    /// (e.g. R² or accuracy), and returns both scores.
    /// </summary>
    public static (double Real, double Synthetic) TrainOnSyntheticTestOnReal(Func<IDataView, ITransformer> train, Func<ITransformer, IDataView, double> score,
        IDataView realTraining, IDataView synthetic, IDataView holdout)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(score);
        return (score(train(realTraining), holdout), score(train(synthetic), holdout));
    }

    /// <summary>Reads columns of a table in one pass: numeric columns as numbers (NaN = missing), the others as level names.</summary>
    public static IReadOnlyList<(double[]? Numbers, string[]? Levels)> ReadColumns(IDataView data, IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(names);
        return TableColumn.Read(data, names, nameof(names)).Select(c => (c.Numbers, c.Levels)).ToArray();
    }

    /// <summary>Two-sample Kolmogorov–Smirnov distance sup |F_a − F_b|.</summary>
    public static double KolmogorovSmirnov(double[] a, double[] b)
    {
        if (a.Length == 0 || b.Length == 0) return a.Length == b.Length ? 0 : 1;
        var x = (double[])a.Clone(); var y = (double[])b.Clone();
        Array.Sort(x); Array.Sort(y);
        int i = 0, j = 0;
        double worst = 0;
        while (i < x.Length && j < y.Length)
        {
            double v = Math.Min(x[i], y[j]);
            while (i < x.Length && x[i] <= v) i++;
            while (j < y.Length && y[j] <= v) j++;
            worst = Math.Max(worst, Math.Abs((double)i / x.Length - (double)j / y.Length));
        }
        return worst;
    }

    /// <summary>Total-variation distance ½ Σ |p − q| between two samples' level frequencies.</summary>
    public static double TotalVariation(IReadOnlyList<string> a, IReadOnlyList<string> b)
    {
        var p = a.GroupBy(v => v).ToDictionary(g => g.Key, g => g.Count() / (double)a.Count);
        var q = b.GroupBy(v => v).ToDictionary(g => g.Key, g => g.Count() / (double)b.Count);
        return 0.5 * p.Keys.Union(q.Keys).Sum(k => Math.Abs(p.GetValueOrDefault(k) - q.GetValueOrDefault(k)));
    }

    // Average ranks (ties share their mean rank); missing values get the middle rank so they do not drive ρ.
    private static double[] Ranks(double[] values)
    {
        int n = values.Length;
        var order = Enumerable.Range(0, n).Where(i => !double.IsNaN(values[i])).OrderBy(i => values[i]).ToArray();
        var ranks = Enumerable.Repeat((n + 1) / 2.0, n).ToArray();
        for (int start = 0; start < order.Length;)
        {
            int end = start;
            while (end + 1 < order.Length && values[order[end + 1]] == values[order[start]]) end++;
            double rank = (start + end) / 2.0 + 1;
            for (int k = start; k <= end; k++) ranks[order[k]] = rank;
            start = end + 1;
        }
        return ranks;
    }

    private static double Pearson(double[] a, double[] b)
    {
        double ma = a.Average(), mb = b.Average(), sab = 0, saa = 0, sbb = 0;
        for (int i = 0; i < a.Length; i++) { double da = a[i] - ma, db = b[i] - mb; sab += da * db; saa += da * da; sbb += db * db; }
        return saa == 0 || sbb == 0 ? 0 : sab / Math.Sqrt(saa * sbb);
    }

    private static PrivacyCheck Privacy(TableColumn[] training, TableColumn[] holdout, TableColumn[] synthetic, int seed)
    {
        using var scope = torch.NewDisposeScope();
        var standardize = Standardizer(training);
        var t = standardize(training);
        var h = standardize(holdout);
        var s = standardize(synthetic);
        var holdoutDcr = NearestDistance(h, t);
        var syntheticDcr = NearestDistance(s, t);
        double threshold = Quantile(holdoutDcr, 0.05);
        double closer = syntheticDcr.Count(d => d < threshold) / (double)syntheticDcr.Length;
        var random = new Random(seed);
        var subsetRows = Enumerable.Range(0, (int)t.shape[0]).OrderBy(_ => random.Next()).Take((int)h.shape[0]).Select(i => (long)i).ToArray();
        var subset = t.index_select(0, torch.tensor(subsetRows));
        var toSubset = NearestDistance(s, subset);
        var toHoldout = NearestDistance(s, h);
        double nearer = toSubset.Zip(toHoldout).Count(p => p.First < p.Second) / (double)toSubset.Length;
        return new PrivacyCheck(closer, nearer, Quantile(syntheticDcr, 0.5), Quantile(holdoutDcr, 0.5));
    }

    // Numeric columns as z-scores and categorical ones as z-scores of their level codes, both by the training rows;
    // missing values at the training mean.
    private static Func<TableColumn[], Tensor> Standardizer(TableColumn[] training)
    {
        var codes = training.Select(c => c.Levels is null ? null
            : c.Levels.Distinct().Select((l, i) => (l, i)).ToDictionary(p => p.l, p => (double)p.i, StringComparer.Ordinal)).ToArray();
        double[][] Values(TableColumn[] table) => table.Select((c, j) => c.Numbers ?? c.Levels!.Select(l => codes[j]!.TryGetValue(l, out var v) ? v : double.NaN).ToArray()).ToArray();
        var reference = Values(training);
        var mean = reference.Select(v => v.Where(x => !double.IsNaN(x)).DefaultIfEmpty(0).Average()).ToArray();
        var sd = reference.Select((v, j) => Math.Sqrt(v.Where(x => !double.IsNaN(x)).Select(x => (x - mean[j]) * (x - mean[j])).DefaultIfEmpty(0).Average())).ToArray();
        return table =>
        {
            var values = Values(table);
            int n = values[0].Length, d = values.Length;
            var flat = new float[n * d];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < d; j++)
                    flat[i * d + j] = double.IsNaN(values[j][i]) ? 0f : (float)((values[j][i] - mean[j]) / (sd[j] > 0 ? sd[j] : 1));
            return torch.tensor(flat, new long[] { n, d });
        };
    }

    private static double[] NearestDistance(Tensor from, Tensor to)
    {
        var result = new double[from.shape[0]];
        const int block = 2048;
        for (long start = 0; start < from.shape[0]; start += block)
        {
            using var scope = torch.NewDisposeScope();
            var rows = from.narrow(0, start, Math.Min(block, from.shape[0] - start));
            var nearest = torch.cdist(rows, to).min(1).values.to(ScalarType.Float64).data<double>().ToArray();
            nearest.CopyTo(result, start);
        }
        return result;
    }

    private static double Quantile(double[] values, double p)
    {
        var sorted = (double[])values.Clone();
        Array.Sort(sorted);
        double position = p * (sorted.Length - 1);
        int low = (int)Math.Floor(position), high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (position - low) * (sorted[high] - sorted[low]);
    }
}
