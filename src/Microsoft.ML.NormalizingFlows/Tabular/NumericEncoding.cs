using System.Globalization;

namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>
/// A numeric column through its empirical distribution function F̂: u = F̂(x), piecewise linear through at most
/// <c>maxKnots</c> quantiles (so the model stores quantiles, not training rows). Tied quantiles (a point mass such as
/// many zeros) become a jump, which encodes as an interval; beyond the data, exponential tails in u keep F̂ strictly
/// increasing, so every real value has a finite density. Integers are jittered by U(−½, ½) before F̂ is built and
/// encode as [F̂(v − ½), F̂(v + ½)]; generated values are rounded back. Missing values (NaN) own [0, m] of the line,
/// m being their share, so the flow learns when values go missing from the other columns.
/// This is the marginal half of a Gaussian copula; the flow replaces the copula's single correlation matrix.
/// </summary>
public sealed class NumericEncoding : ColumnEncoding
{
    internal const byte Tag = 1;
    private readonly double[] xs;   // breakpoints of F̂, non-decreasing; xs[k] == xs[k+1] is a jump (point mass)
    private readonly double[] us;   // F̂ at the breakpoints, non-decreasing in [0, 1]
    private readonly double tailLow, tailHigh;  // scales of the exponential tails (0: no tail on that side)

    private NumericEncoding(string name, TabularValueType valueType, ulong keyCount, bool integer, double min, double max,
        double missingShare, bool respectBounds, double[] xs, double[] us) : base(name, valueType, keyCount)
    {
        IsInteger = integer;
        Min = min;
        Max = max;
        MissingShare = missingShare;
        RespectBounds = respectBounds;
        this.xs = xs;
        this.us = us;
        tailLow = us[0] > 0 ? us[0] / EndSlope(fromStart: true) : 0;
        tailHigh = us[^1] < 1 ? (1 - us[^1]) / EndSlope(fromStart: false) : 0;
    }

    public override TabularColumnKind Kind => IsInteger ? TabularColumnKind.Integer : TabularColumnKind.Continuous;
    public bool IsInteger { get; }
    /// <summary>The smallest and largest value seen in training.</summary>
    public double Min { get; }
    public double Max { get; }
    /// <summary>The share of rows with a missing value (NaN) in training.</summary>
    public double MissingShare { get; }
    /// <summary>Whether generated values are clamped to [<see cref="Min"/>, <see cref="Max"/>].</summary>
    public bool RespectBounds { get; }
    /// <summary>The number of breakpoints of F̂.</summary>
    public int Breakpoints => xs.Length;

    public override string Describe() =>
        string.Format(CultureInfo.InvariantCulture, "{0} on [{1:G6}, {2:G6}], F̂ through {3} quantiles{4}{5}", IsInteger ? "integer" : "continuous",
            Min, Max, xs.Length, MissingShare > 0 ? $", {MissingShare * 100:F2} % missing" : "", RespectBounds ? ", generated within the data's range" : "");

    /// <summary>Builds the encoding from a column's training values (NaN = missing).</summary>
    /// <exception cref="ArgumentException">No value is present, or a value is infinite.</exception>
    public static NumericEncoding Fit(string name, TabularValueType valueType, ReadOnlySpan<double> values, bool integer,
        int maxKnots = 1000, bool respectBounds = true, int seed = 0)
    {
        if (maxKnots < 2) throw new ArgumentOutOfRangeException(nameof(maxKnots), maxKnots, "An empirical distribution needs at least 2 knots.");
        var observed = new List<double>(values.Length);
        foreach (double v in values)
        {
            if (double.IsNaN(v)) continue;
            if (double.IsInfinity(v)) throw new ArgumentException($"Column '{name}' holds an infinite value ({v}); only finite numbers and missing values (NaN) can be modelled.", nameof(values));
            observed.Add(v);
        }
        if (observed.Count == 0) throw new ArgumentException($"Column '{name}' has no non-missing value, so its distribution cannot be learned; drop it or fill it.", nameof(values));
        double min = observed.Min(), max = observed.Max();
        var sorted = observed.ToArray();
        if (integer)
        {
            // Dequantize so that F̂ is continuous between the integers; the fixed seed keeps fits reproducible.
            var random = new Random(seed);
            for (int i = 0; i < sorted.Length; i++) sorted[i] += random.NextDouble() - 0.5;
        }
        Array.Sort(sorted);
        int n = sorted.Length, k = Math.Min(maxKnots, n);
        var knots = new double[k];
        for (int i = 0; i < k; i++)
        {
            double position = (i + 0.5) / k * n - 0.5;   // the (i + ½)/k quantile between order statistics
            int low = Math.Clamp((int)Math.Floor(position), 0, n - 1), high = Math.Min(low + 1, n - 1);
            double t = Math.Clamp(position - low, 0, 1);
            knots[i] = sorted[low] + t * (sorted[high] - sorted[low]);
        }
        var bx = new List<double>();
        var bu = new List<double>();
        for (int i = 0; i < k;)
        {
            int j = i;
            while (j + 1 < k && knots[j + 1] == knots[i]) j++;
            bool onlyValue = i == 0 && j == k - 1;
            if (j > i || onlyValue)
            {
                // A jump: the tied quantiles' share, less a tenth of a knot's share at each inner end, so that values
                // between two neighbouring point masses keep a small positive density instead of none.
                double trim = onlyValue ? 0 : 0.05 / k;
                bx.Add(knots[i]); bu.Add(i == 0 ? 0 : (double)i / k + trim);
                bx.Add(knots[i]); bu.Add(j == k - 1 ? 1 : (double)(j + 1) / k - trim);
            }
            else
            {
                bx.Add(knots[i]); bu.Add((i + 0.5) / k);
            }
            i = j + 1;
        }
        double missing = 1 - (double)n / values.Length;
        return new NumericEncoding(name, valueType, 0, integer, min, max, missing, respectBounds, bx.ToArray(), bu.ToArray());
    }

    /// <summary>Encodes one value (NaN: missing).</summary>
    public EncodedValue Encode(double x)
    {
        if (double.IsNaN(x)) return MissingShare > 0 ? new EncodedValue(0, MissingShare, Math.Log(MissingShare)) : EncodedValue.Unknown;
        if (double.IsInfinity(x)) return EncodedValue.Unknown;
        EncodedValue core;
        if (IsInteger)
        {
            double lo = CoreEncode(x - 0.5).Lo, hi = CoreEncode(x + 0.5).Hi;
            core = new EncodedValue(lo, hi, LogMass(x - 0.5, x + 0.5, lo, hi));
        }
        else core = CoreEncode(x);
        if (MissingShare == 0) return core;
        double scale = 1 - MissingShare;
        double a = MissingShare + scale * core.Lo, b = MissingShare + scale * core.Hi;
        return new EncodedValue(a, b, a == b ? core.LogJacobian + Math.Log(scale) : Math.Log(b - a));
    }

    /// <summary>Decodes u ∈ (0, 1) to a value: NaN for the missing share, rounded for integers, clamped when bounds are respected.</summary>
    public double Decode(double u)
    {
        if (u < MissingShare) return double.NaN;
        double c = MissingShare > 0 ? (u - MissingShare) / (1 - MissingShare) : u;
        double x;
        if (c < us[0]) x = tailLow > 0 && c > 0 ? xs[0] + tailLow * Math.Log(c / us[0]) : xs[0];
        else if (c > us[^1]) x = tailHigh > 0 && c < 1 ? xs[^1] - tailHigh * Math.Log((1 - c) / (1 - us[^1])) : xs[^1];
        else
        {
            int k = LastAtMost(us, c);
            if (k >= xs.Length - 1) x = xs[^1];
            else if (xs[k] == xs[k + 1] || us[k + 1] == us[k]) x = xs[k];
            else x = xs[k] + (c - us[k]) / (us[k + 1] - us[k]) * (xs[k + 1] - xs[k]);
        }
        if (IsInteger) x = Math.Round(x, MidpointRounding.AwayFromZero);
        if (RespectBounds) x = Math.Clamp(x, Min, Max);
        return x;
    }

    private EncodedValue CoreEncode(double x)
    {
        if (x < xs[0])
        {
            if (tailLow == 0) return new EncodedValue(0, 0, double.NegativeInfinity);
            double logU = Math.Log(us[0]) + (x - xs[0]) / tailLow;   // in logs: far out, u underflows but the density stays finite
            double u = Math.Exp(logU);
            return new EncodedValue(u, u, logU - Math.Log(tailLow));
        }
        if (x > xs[^1])
        {
            if (tailHigh == 0) return new EncodedValue(1, 1, double.NegativeInfinity);
            double logTail = Math.Log(1 - us[^1]) - (x - xs[^1]) / tailHigh;
            double u = 1 - Math.Exp(logTail);
            return new EncodedValue(u, u, logTail - Math.Log(tailHigh));
        }
        int k = LastAtMost(xs, x);
        if (xs[k] == x)
        {
            int first = k;
            while (first > 0 && xs[first - 1] == x) first--;
            if (first < k) return new EncodedValue(us[first], us[k], Math.Log(us[k] - us[first]));   // a point mass
            int segment = k < xs.Length - 1 ? k : k - 1;
            return new EncodedValue(us[k], us[k], Math.Log(Slope(segment)));
        }
        double slope = Slope(k), value = us[k] + (x - xs[k]) * slope;
        return new EncodedValue(value, value, Math.Log(slope));
    }

    // log(F̂(b) − F̂(a)) for an integer's interval: in the tails the difference of two u that both round to 0 or 1 is
    // taken in logs, so a value far outside the data keeps a finite (very low) likelihood.
    private double LogMass(double a, double b, double lo, double hi)
    {
        if (a > xs[^1] && tailHigh > 0)
        {
            double logTailA = Math.Log(1 - us[^1]) - (a - xs[^1]) / tailHigh;
            return logTailA + Math.Log(-double.ExpM1(-(b - a) / tailHigh));
        }
        if (b < xs[0] && tailLow > 0)
        {
            double logUB = Math.Log(us[0]) + (b - xs[0]) / tailLow;
            return logUB + Math.Log(-double.ExpM1(-(b - a) / tailLow));
        }
        return Math.Log(hi - lo);
    }

    private double Slope(int segment) =>
        segment < 0 || segment + 1 >= xs.Length || xs[segment + 1] == xs[segment] ? 0 : (us[segment + 1] - us[segment]) / (xs[segment + 1] - xs[segment]);

    // The density at the first (or last) sloped segment, which the tail continues.
    private double EndSlope(bool fromStart)
    {
        for (int s = 0; s + 1 < xs.Length; s++)
        {
            int segment = fromStart ? s : xs.Length - 2 - s;
            double slope = Slope(segment);
            if (slope > 0) return slope;
        }
        return 1;
    }

    private static int LastAtMost(double[] sorted, double value)
    {
        int index = Array.BinarySearch(sorted, value);
        if (index >= 0) { while (index + 1 < sorted.Length && sorted[index + 1] == value) index++; return index; }
        return Math.Max(0, ~index - 1);
    }

    internal override void Write(BinaryWriter writer)
    {
        WriteHeader(writer, Tag);
        writer.Write(IsInteger);
        writer.Write(Min);
        writer.Write(Max);
        writer.Write(MissingShare);
        writer.Write(RespectBounds);
        writer.Write(xs.Length);
        for (int i = 0; i < xs.Length; i++) { writer.Write(xs[i]); writer.Write(us[i]); }
    }

    internal static NumericEncoding ReadBody(BinaryReader reader, string name, TabularValueType valueType, ulong keyCount)
    {
        bool integer = reader.ReadBoolean();
        double min = reader.ReadDouble(), max = reader.ReadDouble(), missing = reader.ReadDouble();
        bool bounds = reader.ReadBoolean();
        int count = reader.ReadInt32();
        if (count < 1 || count > 10_000_000 || !(missing >= 0 && missing < 1) || !(min <= max))
            throw new InvalidDataException($"Corrupt table-flow model: column '{name}' has {count} breakpoints, missing share {missing}, range [{min}, {max}].");
        var xs = new double[count];
        var us = new double[count];
        for (int i = 0; i < count; i++) { xs[i] = reader.ReadDouble(); us[i] = reader.ReadDouble(); }
        for (int i = 0; i < count; i++)
            if (!double.IsFinite(xs[i]) || !(us[i] >= 0 && us[i] <= 1) || i > 0 && (xs[i] < xs[i - 1] || us[i] < us[i - 1]))
                throw new InvalidDataException($"Corrupt table-flow model: column '{name}' has a non-monotone distribution function at breakpoint {i}.");
        return new NumericEncoding(name, valueType, keyCount, integer, min, max, missing, bounds, xs, us);
    }
}
