namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>
/// A categorical column: level k owns [c_k, c_{k+1}) of the unit line, as wide as its share of the training rows,
/// in the given level order (so ordered categories stay adjacent, which is what a flow can exploit). Training
/// draws u uniformly inside the level's interval; generation reads the level back from the interval u falls in,
/// so generated rows only ever carry levels seen in training. Text, key and Boolean columns use it.
/// </summary>
public sealed class CategoryEncoding : ColumnEncoding
{
    internal const byte Tag = 2;
    private readonly string[] levels;
    private readonly double[] cumulative;   // length L + 1, from 0 to 1
    private readonly Dictionary<string, int> indexOf;

    private CategoryEncoding(string name, TabularValueType valueType, ulong keyCount, string[] levels, double[] cumulative)
        : base(name, valueType, keyCount)
    {
        this.levels = levels;
        this.cumulative = cumulative;
        indexOf = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < levels.Length; i++)
            if (!indexOf.TryAdd(levels[i], i)) throw new ArgumentException($"Column '{name}' lists level '{levels[i]}' twice.", nameof(levels));
    }

    public override TabularColumnKind Kind => TabularColumnKind.Categorical;
    /// <summary>The levels in their order on the unit line.</summary>
    public IReadOnlyList<string> Levels => levels;
    /// <summary>The training share of level <paramref name="index"/>.</summary>
    public double Share(int index) => cumulative[index + 1] - cumulative[index];

    public override string Describe() => $"categorical, {levels.Length} levels: {string.Join(", ", levels.Take(12).Select(l => l.Length == 0 ? "(empty)" : l))}{(levels.Length > 12 ? ", …" : "")}";

    /// <summary>Builds the encoding of column <paramref name="name"/> from its training values (level names). The level
    /// <paramref name="order"/> must list every level seen; null: order of first appearance (False before True for Booleans).</summary>
    public static CategoryEncoding Fit(string name, TabularValueType valueType, ulong keyCount, IReadOnlyList<string> values, IReadOnlyList<string>? order)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) throw new ArgumentException($"Column '{name}' has no rows.", nameof(values));
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        var firstSeen = new List<string>();
        foreach (var v in values)
        {
            if (counts.TryGetValue(v, out int c)) counts[v] = c + 1;
            else { counts[v] = 1; firstSeen.Add(v); }
        }
        string[] levels;
        if (order is not null)
        {
            var missing = firstSeen.Where(v => !order.Contains(v)).ToList();
            if (missing.Count > 0)
                throw new ArgumentException($"Column '{name}': the level order [{string.Join(", ", order)}] does not list level(s) seen in the data: {string.Join(", ", missing.Take(10).Select(m => $"'{m}'"))}.", nameof(order));
            levels = order.ToArray();
        }
        else if (valueType == TabularValueType.Boolean) levels = new[] { "False", "True" }.Where(counts.ContainsKey).ToArray();
        else levels = firstSeen.ToArray();
        var cumulative = new double[levels.Length + 1];
        for (int i = 0; i < levels.Length; i++)
            cumulative[i + 1] = cumulative[i] + (counts.TryGetValue(levels[i], out int c) ? c : 0) / (double)values.Count;
        cumulative[^1] = 1;
        return new CategoryEncoding(name, valueType, keyCount, levels, cumulative);
    }

    /// <summary>The index of a level, or −1 for a level not seen in training.</summary>
    public int IndexOf(string level) => indexOf.TryGetValue(level, out int i) ? i : -1;

    /// <summary>Encodes a level index (−1 or a level without training rows: <see cref="EncodedValue.Unknown"/>).</summary>
    public EncodedValue Encode(int index)
    {
        if (index < 0 || index >= levels.Length) return EncodedValue.Unknown;
        double lo = cumulative[index], hi = cumulative[index + 1];
        return hi > lo ? new EncodedValue(lo, hi, Math.Log(hi - lo)) : EncodedValue.Unknown;
    }

    /// <summary>The level whose interval holds u (levels without training rows are never returned).</summary>
    public int Decode(double u)
    {
        int index = Array.BinarySearch(cumulative, u);
        int k = index >= 0 ? index : ~index - 1;
        k = Math.Clamp(k, 0, levels.Length - 1);
        while (k < levels.Length - 1 && cumulative[k + 1] <= cumulative[k]) k++;          // skip empty levels upwards
        while (k > 0 && cumulative[k + 1] <= cumulative[k]) k--;
        return k;
    }

    internal override void Write(BinaryWriter writer)
    {
        WriteHeader(writer, Tag);
        writer.Write(levels.Length);
        for (int i = 0; i < levels.Length; i++) { writer.Write(levels[i]); writer.Write(cumulative[i + 1]); }
    }

    internal static CategoryEncoding ReadBody(BinaryReader reader, string name, TabularValueType valueType, ulong keyCount)
    {
        int count = reader.ReadInt32();
        if (count < 1 || count > 10_000_000) throw new InvalidDataException($"Corrupt table-flow model: column '{name}' has {count} levels.");
        var levels = new string[count];
        var cumulative = new double[count + 1];
        for (int i = 0; i < count; i++)
        {
            levels[i] = reader.ReadString();
            cumulative[i + 1] = reader.ReadDouble();
            if (!(cumulative[i + 1] >= cumulative[i] && cumulative[i + 1] <= 1 + 1e-12))
                throw new InvalidDataException($"Corrupt table-flow model: column '{name}' has non-monotone level shares at level {i}.");
        }
        try { return new CategoryEncoding(name, valueType, keyCount, levels, cumulative); }
        catch (ArgumentException e) { throw new InvalidDataException($"Corrupt table-flow model: {e.Message}", e); }
    }
}
