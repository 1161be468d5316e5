using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>
/// The encodings of a table: the modelled columns (each one coordinate of the flow) and the context columns (the
/// conditioner's input: one-hot levels, or a numeric column's normal score). Moves rows between the table and the
/// flow's space in both directions.
/// </summary>
internal sealed class TableCodec
{
    public TableCodec(IReadOnlyList<ColumnEncoding> modelled, IReadOnlyList<ColumnEncoding> context)
    {
        Modelled = modelled;
        Context = context;
        ContextWidth = context.Sum(c => c is CategoryEncoding k ? k.Levels.Count : 1);
    }

    public IReadOnlyList<ColumnEncoding> Modelled { get; }
    public IReadOnlyList<ColumnEncoding> Context { get; }
    public int Dimension => Modelled.Count;
    public int ContextWidth { get; }

    /// <summary>Fits an encoding to a column read from the training data.</summary>
    public static ColumnEncoding FitColumn(TableColumn column, TabularColumnOptions? options, int maxKnots, bool respectBounds, int seed)
    {
        var kind = options?.Kind ?? TabularColumnKind.Auto;
        bool numericType = TabularValueTypes.IsNumeric(column.Type);
        if (kind == TabularColumnKind.Auto)
            kind = !numericType ? TabularColumnKind.Categorical : TabularValueTypes.IsInteger(column.Type) ? TabularColumnKind.Integer : TabularColumnKind.Continuous;
        if (kind != TabularColumnKind.Categorical && !numericType)
            throw new ArgumentException($"Column '{column.Name}' has type {column.Type}, which cannot be modelled as {kind}; only numeric columns can.", nameof(options));
        if (options?.Levels is not null && kind != TabularColumnKind.Categorical)
            throw new ArgumentException($"Column '{column.Name}' is modelled as {kind}, so a level order does not apply.", nameof(options));
        if (kind == TabularColumnKind.Categorical)
            return CategoryEncoding.Fit(column.Name, column.Type, column.KeyCount, column.AsLevels(), options?.Levels);
        return NumericEncoding.Fit(column.Name, column.Type, column.Numbers, kind == TabularColumnKind.Integer, maxKnots,
            options?.RespectBounds ?? respectBounds, seed);
    }

    /// <summary>Each modelled cell's interval and log-Jacobian, row-major [n, d]; <paramref name="columns"/> in <see cref="Modelled"/>'s order.</summary>
    public (double[] Lo, double[] Hi, double[] LogJacobian) Encode(IReadOnlyList<TableColumn> columns)
    {
        int n = columns.Count == 0 ? 0 : columns[0].Count, d = Dimension;
        var lo = new double[n * d];
        var hi = new double[n * d];
        var logJ = new double[n * d];
        for (int j = 0; j < d; j++)
        {
            var column = columns[j];
            switch (Modelled[j])
            {
                case NumericEncoding numeric:
                    var values = column.Numbers!;   // numeric encodings only fit numeric columns, which are read as numbers
                    for (int i = 0; i < n; i++) Put(i * d + j, numeric.Encode(values[i]));
                    break;
                case CategoryEncoding category:
                    var levels = column.AsLevels();
                    for (int i = 0; i < n; i++) Put(i * d + j, category.Encode(category.IndexOf(levels[i])));
                    break;
            }
        }
        return (lo, hi, logJ);

        void Put(int at, EncodedValue e) { lo[at] = e.Lo; hi[at] = e.Hi; logJ[at] = e.LogJacobian; }
    }

    /// <summary>
    /// The conditioner input for context rows [n, <see cref="ContextWidth"/>] (null without context columns):
    /// categorical columns one-hot, numeric columns as the normal score of their encoded interval's middle.
    /// </summary>
    /// <exception cref="ArgumentException">A context value never seen in training (unless <paramref name="unknownRows"/> is given, which then marks those rows).</exception>
    public Tensor? ContextTensor(IReadOnlyList<TableColumn> columns, ScalarType dtype, Device device, bool[]? unknownRows = null)
    {
        if (Context.Count == 0) return null;
        int n = columns[0].Count;
        var features = new double[n * ContextWidth];
        var isScore = new bool[ContextWidth];
        int offset = 0;
        for (int j = 0; j < Context.Count; j++)
        {
            var column = columns[j];
            if (Context[j] is CategoryEncoding category)
            {
                var levels = column.AsLevels();
                for (int i = 0; i < n; i++)
                {
                    int k = category.IndexOf(levels[i]);
                    if ((k < 0 || category.Share(k) == 0) && unknownRows is not null) { unknownRows[i] = true; continue; }
                    if (k < 0 || category.Share(k) == 0)
                        throw new ArgumentException($"Context column '{category.Name}' has value '{levels[i]}', which never occurred in training; known values: {string.Join(", ", category.Levels.Where((_, x) => category.Share(x) > 0).Take(20))}.", nameof(columns));
                    features[i * ContextWidth + offset + k] = 1;
                }
                offset += category.Levels.Count;
            }
            else
            {
                var numeric = (NumericEncoding)Context[j];
                var values = column.Numbers!;
                for (int i = 0; i < n; i++)
                {
                    var e = numeric.Encode(values[i]);
                    if (double.IsNaN(e.Lo) && unknownRows is not null) { unknownRows[i] = true; features[i * ContextWidth + offset] = 0.5; continue; }
                    if (double.IsNaN(e.Lo) || double.IsInfinity(e.LogJacobian) && e.Lo == e.Hi && (e.Lo <= 0 || e.Lo >= 1))
                        throw new ArgumentException($"Context column '{numeric.Name}' has value {values[i]}, which the training data give no probability (missing, or outside a one-sided range).", nameof(columns));
                    features[i * ContextWidth + offset] = (e.Lo + e.Hi) / 2;
                }
                isScore[offset] = true;
                offset += 1;
            }
        }
        using var scope = torch.NewDisposeScope();
        var t = torch.tensor(features, new long[] { n, ContextWidth }, ScalarType.Float64);
        if (isScore.Any(s => s))
        {
            var scoreColumns = torch.tensor(Enumerable.Range(0, ContextWidth).Where(k => isScore[k]).Select(k => (long)k).ToArray());
            t.index_copy_(1, scoreColumns, NormalScores(t.index_select(1, scoreColumns)));
        }
        return t.to(dtype).to(device).MoveToOuterDisposeScope();
    }

    /// <summary>z = Φ⁻¹(u), with u kept inside (1e−12, 1 − 1e−12) so that the ends stay finite.</summary>
    public static Tensor NormalScores(Tensor u) => torch.special.ndtri(u.clamp(S(1e-12), S(1 - 1e-12)));

    /// <summary>Decodes a block of u [n, d] (row-major, the flow's draws through Φ) into typed arrays, one per modelled column.</summary>
    public Array[] Decode(double[] u, int n)
    {
        int d = Dimension;
        var result = new Array[d];
        for (int j = 0; j < d; j++)
        {
            var encoding = Modelled[j];
            if (encoding is NumericEncoding numeric)
            {
                var values = new double[n];
                for (int i = 0; i < n; i++) values[i] = numeric.Decode(u[i * d + j]);
                result[j] = TypedColumns.FromNumbers(encoding.ValueType, values);
            }
            else
            {
                var category = (CategoryEncoding)encoding;
                var levels = new string[n];
                for (int i = 0; i < n; i++) levels[i] = category.Levels[category.Decode(u[i * d + j])];
                result[j] = TypedColumns.FromLevels(encoding.ValueType, levels, KeyNamesOf(encoding));
            }
        }
        return result;
    }

    /// <summary>Key names stored for key columns (their levels are the key values' text).</summary>
    public Dictionary<string, string[]> KeyNames { get; } = new(StringComparer.Ordinal);

    public IReadOnlyList<string>? KeyNamesOf(ColumnEncoding encoding) => KeyNames.TryGetValue(encoding.Name, out var names) ? names : null;

    public void Write(BinaryWriter writer)
    {
        writer.Write(Modelled.Count);
        foreach (var e in Modelled) e.Write(writer);
        writer.Write(Context.Count);
        foreach (var e in Context) e.Write(writer);
        writer.Write(KeyNames.Count);
        foreach (var (name, names) in KeyNames)
        {
            writer.Write(name);
            writer.Write(names.Length);
            foreach (var n in names) writer.Write(n);
        }
    }

    public static TableCodec Read(BinaryReader reader)
    {
        int d = reader.ReadInt32();
        if (d <= 0 || d > 100_000) throw new InvalidDataException($"Corrupt table-flow model: {d} modelled columns.");
        var modelled = Enumerable.Range(0, d).Select(_ => ColumnEncoding.Read(reader)).ToArray();
        int c = reader.ReadInt32();
        if (c < 0 || c > 100_000) throw new InvalidDataException($"Corrupt table-flow model: {c} context columns.");
        var context = Enumerable.Range(0, c).Select(_ => ColumnEncoding.Read(reader)).ToArray();
        var codec = new TableCodec(modelled, context);
        int keys = reader.ReadInt32();
        for (int k = 0; k < keys; k++)
        {
            string name = reader.ReadString();
            int count = reader.ReadInt32();
            if (count < 0 || count > 10_000_000) throw new InvalidDataException($"Corrupt table-flow model: key column '{name}' has {count} key names.");
            codec.KeyNames[name] = Enumerable.Range(0, count).Select(_ => reader.ReadString()).ToArray();
        }
        return codec;
    }
}
