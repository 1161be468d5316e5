using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.MLNet;
using Microsoft.ML.NormalizingFlows.Tabular;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(TabularFlowTransformer), null, typeof(SignatureLoadModel),
    "Tabular Flow Transformer", TabularFlowTransformer.LoaderSignature)]

namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>
/// A table flow fitted by <see cref="TabularFlowEstimator"/>.
/// <see cref="Generate(long, IReadOnlyDictionary{string, object}?)"/> makes synthetic rows with the training table's
/// columns and types (lazily, in blocks, so memory stays flat for any row count); <see cref="Transform"/> scores real
/// rows, appending their log-likelihood (for anomaly detection: low values are unusual rows). Saved and loaded by
/// <c>mlContext.Model</c> with its encodings and weights inside the zip.
/// </summary>
public sealed class TabularFlowTransformer : ITransformer
{
    internal const string LoaderSignature = "TabularFlowXf";
    internal const string StreamName = "TableFlow.bin";
    private const uint VersionCurrent = 0x00010001;

    private readonly IHost host;
    private readonly TableCodec codec;
    private readonly ContextTable contexts;

    internal TabularFlowTransformer(IHostEnvironment env, TableCodec codec, ConditionalFlowDistribution flow, ContextTable contexts,
        string[] columnOrder, int seed, int blockRows, string logLikelihoodColumnName)
    {
        host = env.Register(nameof(TabularFlowTransformer));
        this.codec = codec;
        this.contexts = contexts;
        Flow = flow;
        Flow.eval();
        ColumnOrder = columnOrder;
        Seed = seed;
        BlockRows = blockRows;
        LogLikelihoodColumnName = logLikelihoodColumnName;
        GeneratedSchema = BuildGeneratedSchema();
    }

    /// <summary>The modelled columns' encodings, in the flow's coordinate order.</summary>
    public IReadOnlyList<ColumnEncoding> Encodings => codec.Modelled;
    /// <summary>The context columns' encodings (empty for an unconditional model).</summary>
    public IReadOnlyList<ColumnEncoding> ContextEncodings => codec.Context;
    /// <summary>The fitted flow over the columns' normal scores.</summary>
    public ConditionalFlowDistribution Flow { get; }
    /// <summary>Modelled and context columns in the training table's order (the generated rows' column order).</summary>
    public IReadOnlyList<string> ColumnOrder { get; }
    /// <summary>Seeds the generated rows (block b of rows uses a generator seeded from (seed, b)).</summary>
    public int Seed { get; }
    public int BlockRows { get; }
    public string LogLikelihoodColumnName { get; }
    /// <summary>What the fit did (null for loaded models).</summary>
    public Training.FitResult? TrainingResult { get; internal set; }
    /// <summary>The schema of generated rows: the training columns with their types.</summary>
    public DataViewSchema GeneratedSchema { get; }
    public bool IsRowToRowMapper => true;

    /// <summary>A one-line description of each column's encoding.</summary>
    public string DescribeEncodings() => string.Join(Environment.NewLine,
        codec.Modelled.Select(e => $"{e.Name}: {e.Describe()}").Concat(codec.Context.Select(e => $"{e.Name} (context): {e.Describe()}")));

    // ---- generation --------------------------------------------------------------------------------

    /// <summary>
    /// <paramref name="rowCount"/> synthetic rows. A conditional model takes its context columns' values from
    /// <paramref name="context"/> (e.g. <c>{ ["cut"] = "Fair" }</c>: every row has them), or, when null, draws them
    /// with the training rows' frequencies. The same model, <see cref="Seed"/> and row count give the same rows.
    /// </summary>
    public IDataView Generate(long rowCount, IReadOnlyDictionary<string, object>? context = null)
    {
        if (rowCount < 0) throw new ArgumentOutOfRangeException(nameof(rowCount), rowCount, "The number of rows cannot be negative.");
        if (context is null) return new GeneratedTableDataView(this, rowCount, contexts.Columns, (block, count) => contexts.Count == 0 ? null : contexts.Draw(count, new Random((int)(NormalizingFlowTransformer.BlockSeed(Seed, 1, (ulong)block) & int.MaxValue))));
        if (codec.Context.Count == 0 && context.Count > 0)
            throw new ArgumentException($"This model has no context columns, but a context was given ({string.Join(", ", context.Keys)}).", nameof(context));
        // The view encodes the context row up front, which throws for a value never seen in training.
        return new GeneratedTableDataView(this, rowCount, ContextRow(context), (_, count) => new int[count]);
    }

    /// <summary>One synthetic row per row of <paramref name="contexts"/>, given its values of the context columns (which the output repeats).</summary>
    public IDataView Generate(IDataView contexts)
    {
        ArgumentNullException.ThrowIfNull(contexts);
        if (codec.Context.Count == 0) throw new InvalidOperationException("This model has no context columns; use Generate(rowCount).");
        var columns = TableColumn.Read(contexts, codec.Context.Select(c => c.Name).ToArray(), nameof(contexts));
        CheckTypes(columns, codec.Context, nameof(contexts));
        return new GeneratedTableDataView(this, columns.Length == 0 ? 0 : columns[0].Count, columns,
            (block, count) => Enumerable.Range(checked((int)(block * BlockRows)), count).ToArray());
    }

    private TableColumn[] ContextRow(IReadOnlyDictionary<string, object> context)
    {
        var unknown = context.Keys.Where(k => codec.Context.All(c => c.Name != k)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"'{string.Join("', '", unknown)}' is not a context column; the context columns are: {string.Join(", ", codec.Context.Select(c => c.Name))}.", nameof(context));
        return codec.Context.Select(e =>
        {
            if (!context.TryGetValue(e.Name, out var value) || value is null)
                throw new ArgumentException($"The context lacks a value for context column '{e.Name}'.", nameof(context));
            if (e is NumericEncoding)
            {
                double number = value switch
                {
                    IConvertible c when value is not string and not bool => c.ToDouble(System.Globalization.CultureInfo.InvariantCulture),
                    _ => throw new ArgumentException($"Context column '{e.Name}' is numeric, but the value given is {value.GetType().Name} '{value}'.", nameof(context)),
                };
                return new TableColumn(e.Name, e.ValueType, e.KeyCount, null, new[] { number }, null);
            }
            string level = value switch
            {
                bool b => b ? "True" : "False",
                IFormattable f => f.ToString(null, System.Globalization.CultureInfo.InvariantCulture),
                _ => value.ToString() ?? "",
            };
            return new TableColumn(e.Name, e.ValueType, e.KeyCount, codec.KeyNamesOf(e)?.ToArray(), null, new[] { level });
        }).ToArray();
    }

    private static void CheckTypes(IReadOnlyList<TableColumn> columns, IReadOnlyList<ColumnEncoding> encodings, string argumentName)
    {
        for (int j = 0; j < columns.Count; j++)
            if (columns[j].Type != encodings[j].ValueType)
                throw new ArgumentException($"Column '{columns[j].Name}' has type {columns[j].Type}, but the model was fitted on {encodings[j].ValueType}.", argumentName);
    }

    private DataViewSchema BuildGeneratedSchema()
    {
        var builder = new DataViewSchema.Builder();
        foreach (var name in ColumnOrder)
        {
            var e = codec.Modelled.Concat(codec.Context).First(c => c.Name == name);
            var type = TabularValueTypes.DataViewTypeOf(e.ValueType, e.KeyCount);
            if (codec.KeyNamesOf(e) is { } names)
            {
                var values = names.Select(n => n.AsMemory()).ToArray();
                var annotations = new DataViewSchema.Annotations.Builder();
                annotations.AddKeyValues(values.Length, TextDataViewType.Instance,
                    (ref VBuffer<ReadOnlyMemory<char>> v) => v = new VBuffer<ReadOnlyMemory<char>>(values.Length, values));
                builder.AddColumn(name, type, annotations.ToAnnotations());
            }
            else builder.AddColumn(name, type);
        }
        return builder.ToSchema();
    }

    /// <summary>Draws a block: the modelled columns' typed arrays for <paramref name="count"/> rows given context features (null without context).</summary>
    internal Array[] SampleBlock(int count, Tensor? contextFeatures, ulong blockSeed)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var (dtype, device) = Flow.Placement;
        var generator = new Generator(blockSeed, device);
        var (x, _) = Flow.Sample(count, contextFeatures?.to(dtype).to(device), generator);
        var u = torch.special.ndtr(x.to(ScalarType.Float64)).cpu().contiguous().data<double>().ToArray();
        return codec.Decode(u, count);
    }

    internal TableCodec Codec => codec;

    // ---- scoring -----------------------------------------------------------------------------------

    /// <summary>The input's columns plus the log-likelihood column.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        SourceColumns(inputSchema);
        return ScoreSchemas.Append(inputSchema, LogLikelihoodColumnName);
    }

    /// <summary>Appends each row's log-likelihood (modelled columns given the context columns): log q of its normal
    /// scores plus each column's log-Jacobian; discrete values count by their probability (the midpoint of their
    /// interval), continuous ones by density. A level or context value never seen in training scores −∞.</summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new BlockScoreDataView(new Scorer(this, SourceColumns(input.Schema)), input, LogLikelihoodColumnName);
    }

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        return new ScoreRowMapper(new Scorer(this, SourceColumns(inputSchema)), inputSchema, LogLikelihoodColumnName);
    }

    private DataViewSchema.Column[] SourceColumns(DataViewSchema schema) =>
        codec.Modelled.Concat(codec.Context).Select(e =>
        {
            var column = schema.GetColumnOrNull(e.Name)
                ?? throw new ArgumentException($"The data have no column '{e.Name}', which the table flow models.", nameof(schema));
            var (type, keyCount) = TabularValueTypes.Of(column);
            if (type != e.ValueType || keyCount != e.KeyCount)
                throw new ArgumentException($"Column '{e.Name}' has type {column.Type}, but the model was fitted on {TabularValueTypes.DataViewTypeOf(e.ValueType, e.KeyCount)}.", nameof(schema));
            return column;
        }).ToArray();

    internal float[] LogLikelihoodOf(IReadOnlyList<TableColumn> modelled, IReadOnlyList<TableColumn> context)
    {
        int n = modelled[0].Count, d = codec.Dimension;
        var (lo, hi, logJ) = codec.Encode(modelled);
        var unknown = new bool[n];
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var (dtype, device) = Flow.Placement;
        var contextTensor = codec.ContextTensor(context, dtype, device, unknown);
        var u = torch.tensor(lo, new long[] { n, d }, ScalarType.Float64).Plus(torch.tensor(hi, new long[] { n, d }, ScalarType.Float64)).div_(S(2));
        var bad = u.isnan().any(1).logical_or(torch.tensor(unknown));
        var z = TableCodec.NormalScores(u.nan_to_num(0.5));
        var logPhi = z.Squared().mul(S(-0.5)).sub(S(0.5 * Math.Log(2 * Math.PI)));
        var logQ = Flow.LogProb(z.to(dtype).to(device), contextTensor).to(ScalarType.Float64).cpu();
        var total = logQ.Plus(torch.tensor(logJ, new long[] { n, d }, ScalarType.Float64).sub(logPhi).sum(1))
            .masked_fill(bad, S(double.NegativeInfinity));
        return total.to(ScalarType.Float32).contiguous().data<float>().ToArray();
    }

    // Gathers rows' modelled and context columns, then scores a block in one pass.
    private sealed class Scorer(TabularFlowTransformer model, DataViewSchema.Column[] columns) : IRowScorer
    {
        public IReadOnlyList<DataViewSchema.Column> SourceColumns => columns;
        public int BlockRows => model.BlockRows;
        public RowScoreReader CreateReader(DataViewRow row) => new Reader(model, row, columns);

        private sealed class Reader : RowScoreReader
        {
            private readonly TabularFlowTransformer model;
            private readonly ColumnEncoding[] encodings;
            private readonly Func<double>?[] numbers;
            private readonly Func<string>?[] levels;
            private readonly List<double>[] numberValues;
            private readonly List<string>[] levelValues;

            public Reader(TabularFlowTransformer model, DataViewRow row, DataViewSchema.Column[] columns)
            {
                this.model = model;
                encodings = model.codec.Modelled.Concat(model.codec.Context).ToArray();
                numbers = new Func<double>?[columns.Length];
                levels = new Func<string>?[columns.Length];
                numberValues = new List<double>[columns.Length];
                levelValues = new List<string>[columns.Length];
                for (int j = 0; j < columns.Length; j++)
                {
                    var type = encodings[j].ValueType;
                    if (TabularValueTypes.IsNumeric(type)) { numbers[j] = TabularValueTypes.NumberReader(row, columns[j], type); numberValues[j] = new(); }
                    else { levels[j] = TabularValueTypes.LevelReader(row, columns[j], type, model.codec.KeyNamesOf(encodings[j])); levelValues[j] = new(); }
                }
            }

            public override void Read(int slot)
            {
                for (int j = 0; j < encodings.Length; j++)
                {
                    if (numbers[j] is { } n) Set(numberValues[j], slot, n());
                    else Set(levelValues[j], slot, levels[j]!());
                }
            }

            private static void Set<T>(List<T> list, int slot, T value)
            {
                while (list.Count <= slot) list.Add(value);
                list[slot] = value;
            }

            public override float[] Score(int count)
            {
                var table = encodings.Select((e, j) => new TableColumn(e.Name, e.ValueType, e.KeyCount, null,
                    numberValues[j]?.Take(count).ToArray(), levelValues[j]?.Take(count).ToArray())).ToArray();
                int d = model.codec.Dimension;
                return model.LogLikelihoodOf(table[..d], table[d..]);
            }
        }
    }

    // ---- persistence -------------------------------------------------------------------------------

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "TABFLOWX",
        verWrittenCur: VersionCurrent,
        verReadableCur: VersionCurrent,
        verWeCanReadBack: VersionCurrent,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(TabularFlowTransformer).Assembly.FullName);

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        ctx.SaveBinaryStream(StreamName, w =>
        {
            codec.Write(w);
            contexts.Write(w);
            w.Write(ColumnOrder.Count);
            foreach (var name in ColumnOrder) w.Write(name);
            w.Write(Seed);
            w.Write(BlockRows);
            w.Write(LogLikelihoodColumnName);
            var s = Flow.Settings;
            w.Write(s.Layers); w.Write(s.Hidden); w.Write(s.Blocks); w.Write(s.Bins); w.Write(s.Bound);
            w.Write(Flow.Seed);
            var weights = new MemoryStream();
            Flow.save(weights);                  // closes the stream; ToArray still reads it
            var bytes = weights.ToArray();
            w.Write((long)bytes.Length);
            w.Write(bytes);
        });
    }

    // Called by ML.NET's component catalog (SignatureLoadModel) when a zip is loaded.
    private static TabularFlowTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(ctx);
        ctx.CheckAtModel(GetVersionInfo());
        TabularFlowTransformer? model = null;
        bool found;
        try
        {
            found = ctx.TryLoadBinaryStream(StreamName, r => model = Read(env, r));
        }
        catch (EndOfStreamException e)
        {
            throw new InvalidDataException($"Corrupt table-flow model: the entry '{StreamName}' is truncated.", e);
        }
        if (!found || model is null) throw new InvalidDataException($"Corrupt table-flow model: the entry '{StreamName}' is missing.");
        return model;
    }

    private static TabularFlowTransformer Read(IHostEnvironment env, BinaryReader r)
    {
        var codec = TableCodec.Read(r);
        var contexts = ContextTable.Read(r, codec);
        int names = r.ReadInt32();
        if (names != codec.Dimension + codec.Context.Count) throw new InvalidDataException($"Corrupt table-flow model: {names} column names for {codec.Dimension + codec.Context.Count} columns.");
        var order = Enumerable.Range(0, names).Select(_ => r.ReadString()).ToArray();
        int seed = r.ReadInt32(), blockRows = r.ReadInt32();
        string logLikelihood = r.ReadString();
        ConditionalFlowSettings settings;
        try { settings = new ConditionalFlowSettings(r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadInt32(), r.ReadDouble()); settings.Validate(); }
        catch (ArgumentException e) { throw new InvalidDataException($"Corrupt table-flow model: {e.Message}", e); }
        long flowSeed = r.ReadInt64();
        long length = r.ReadInt64();
        if (length <= 0 || length > int.MaxValue || blockRows <= 0) throw new InvalidDataException($"Corrupt table-flow model: weights of {length} bytes, block size {blockRows}.");
        var bytes = r.ReadBytes((int)length);
        if (bytes.Length != length) throw new InvalidDataException("Corrupt table-flow model: the weights are truncated.");
        var flow = new ConditionalFlowDistribution(codec.Dimension, codec.ContextWidth, settings, flowSeed);
        try
        {
            using var stream = new MemoryStream(bytes, writable: false);
            flow.load(stream);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"Corrupt table-flow model: the weights do not fit the architecture ({e.Message}).", e);
        }
        return new TabularFlowTransformer(env, codec, flow, contexts, order, seed, blockRows, logLikelihood);
    }
}
