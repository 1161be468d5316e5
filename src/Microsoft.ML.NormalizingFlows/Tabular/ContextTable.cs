namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>
/// The distinct context tuples of the training rows with their frequencies: what a conditional model draws contexts
/// from when asked for rows without a context (p(context) × q(rest | context)). Numeric context values are thus
/// values from the training rows; pass contexts explicitly to avoid that.
/// </summary>
internal sealed class ContextTable
{
    private ContextTable(TableColumn[] columns, double[] cumulative)
    {
        Columns = columns;
        this.cumulative = cumulative;
    }

    private readonly double[] cumulative;

    /// <summary>One row per distinct tuple, in the context columns' order (empty without context).</summary>
    public TableColumn[] Columns { get; }
    public int Count => cumulative.Length;

    public static ContextTable Of(IReadOnlyList<TableColumn> context)
    {
        if (context.Count == 0) return new ContextTable(Array.Empty<TableColumn>(), Array.Empty<double>());
        int n = context[0].Count;
        var keys = context.Select(c => c.AsLevels()).ToArray();
        var counts = new Dictionary<string, (int Row, int Count)>(StringComparer.Ordinal);
        var order = new List<string>();
        for (int i = 0; i < n; i++)
        {
            string key = string.Join("\u001f", keys.Select(k => k[i]));
            if (counts.TryGetValue(key, out var seen)) counts[key] = (seen.Row, seen.Count + 1);
            else { counts[key] = (i, 1); order.Add(key); }
        }
        var rows = order.Select(k => counts[k].Row).ToArray();
        var columns = context.Select(c => new TableColumn(c.Name, c.Type, c.KeyCount, c.KeyNames,
            c.Numbers is null ? null : rows.Select(r => c.Numbers[r]).ToArray(), c.Levels is null ? null : rows.Select(r => c.Levels[r]).ToArray())).ToArray();
        var cumulative = new double[rows.Length];
        double total = 0;
        for (int t = 0; t < rows.Length; t++) cumulative[t] = total += counts[order[t]].Count / (double)n;
        cumulative[^1] = 1;
        return new ContextTable(columns, cumulative);
    }

    /// <summary>Tuple indices drawn by frequency.</summary>
    public int[] Draw(int count, Random random)
    {
        var result = new int[count];
        for (int i = 0; i < count; i++)
        {
            int index = Array.BinarySearch(cumulative, random.NextDouble());
            result[i] = Math.Min(index >= 0 ? index + 1 : ~index, cumulative.Length - 1);
        }
        return result;
    }

    public void Write(BinaryWriter writer)
    {
        writer.Write(Columns.Length);
        writer.Write(Count);
        for (int t = 0; t < Count; t++) writer.Write(t == 0 ? cumulative[0] : cumulative[t] - cumulative[t - 1]);
        foreach (var c in Columns)
        {
            writer.Write(c.Name);
            writer.Write((int)c.Type);
            writer.Write(c.KeyCount);
            writer.Write(c.Numbers is not null);
            for (int t = 0; t < Count; t++)
                if (c.Numbers is not null) writer.Write(c.Numbers[t]); else writer.Write(c.Levels![t]);
        }
    }

    public static ContextTable Read(BinaryReader reader, TableCodec codec)
    {
        int columns = reader.ReadInt32(), count = reader.ReadInt32();
        if (columns != codec.Context.Count || count < 0 || count > 100_000_000 || columns > 0 && count == 0)
            throw new InvalidDataException($"Corrupt table-flow model: a context table of {columns} columns × {count} tuples for {codec.Context.Count} context columns.");
        var cumulative = new double[count];
        double total = 0;
        for (int t = 0; t < count; t++) cumulative[t] = total += reader.ReadDouble();
        if (count > 0 && Math.Abs(total - 1) > 1e-6) throw new InvalidDataException($"Corrupt table-flow model: context frequencies sum to {total}.");
        if (count > 0) cumulative[^1] = 1;
        var table = new TableColumn[columns];
        for (int j = 0; j < columns; j++)
        {
            string name = reader.ReadString();
            var type = (TabularValueType)reader.ReadInt32();
            ulong keyCount = reader.ReadUInt64();
            bool numbers = reader.ReadBoolean();
            double[]? values = numbers ? new double[count] : null;
            string[]? levels = numbers ? null : new string[count];
            for (int t = 0; t < count; t++)
                if (values is not null) values[t] = reader.ReadDouble(); else levels![t] = reader.ReadString();
            table[j] = new TableColumn(name, type, keyCount, codec.KeyNames.TryGetValue(name, out var k) ? k : null, values, levels);
        }
        return new ContextTable(table, cumulative);
    }
}
