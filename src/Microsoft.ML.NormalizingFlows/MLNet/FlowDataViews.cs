using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.NormalizingFlows.MLNet;

/// <summary>Schema checks with errors that name the column and the argument.</summary>
internal static class FlowColumnChecks
{
    /// <summary>The column, which must be a known-size vector of Single (of size <paramref name="expectedSize"/> when that is positive).</summary>
    public static DataViewSchema.Column CheckVectorColumn(DataViewSchema schema, string name, int expectedSize, string argumentName)
    {
        var column = schema.GetColumnOrNull(name)
            ?? throw new ArgumentOutOfRangeException(argumentName,
                $"Column '{name}' was not found in the input schema (columns: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => c.Name))}).");
        CheckVectorType(name, column.Type, expectedSize, argumentName);
        return column;
    }

    public static void CheckVectorType(string name, DataViewType type, int expectedSize, string argumentName)
    {
        if (type is not VectorDataViewType vector || vector.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(argumentName, $"Column '{name}' must be a known-size vector of Single, but its type is {type}.");
        if (!vector.IsKnownSize)
            throw new ArgumentOutOfRangeException(argumentName, $"Column '{name}' is a variable-size vector of Single; a flow needs a known-size vector (every row of the same dimension d).");
        if (expectedSize > 0 && vector.Size != expectedSize)
            throw new ArgumentOutOfRangeException(argumentName, $"Column '{name}' has vector size {vector.Size} but the flow has dimension {expectedSize}.");
    }
}

/// <summary>The lazy output of <see cref="NormalizingFlowTransformer.Transform"/>: the input plus the flow's columns.</summary>
internal sealed class FlowSampleDataView : IDataView
{
    private readonly NormalizingFlowTransformer model;
    private readonly IDataView input;

    public FlowSampleDataView(NormalizingFlowTransformer model, IDataView input)
    {
        this.model = model;
        this.input = input;
        Schema = model.SampleSchema(input.Schema);
        blockRows = model.BlockRowsFor(input.GetRowCount());
    }

    /// <summary>Rows per block for this view: the model's block size, clipped to a smaller input (Generate(3) computes 3 draws).</summary>
    private readonly int blockRows;

    public bool CanShuffle => input.CanShuffle;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var (inputColumns, active) = Split(columnsNeeded);
        return new FlowSampleCursor(model, Schema, input.GetRowCursor(inputColumns, rand), active, blockRows);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
    {
        var (inputColumns, active) = Split(columnsNeeded);
        return input.GetRowCursorSet(inputColumns, n, rand)
            .Select(c => (DataViewRowCursor)new FlowSampleCursor(model, Schema, c, active, blockRows)).ToArray();
    }

    private (List<DataViewSchema.Column> Input, bool[] Active) Split(IEnumerable<DataViewSchema.Column> columnsNeeded)
    {
        int inputCount = input.Schema.Count;
        var inputColumns = new List<DataViewSchema.Column>();
        var active = new bool[Schema.Count - inputCount];
        foreach (var c in columnsNeeded ?? Enumerable.Empty<DataViewSchema.Column>())
        {
            if (c.Index < inputCount) inputColumns.Add(input.Schema[c.Index]);
            else active[c.Index - inputCount] = true;
        }
        return (inputColumns, active);
    }
}

/// <summary>
/// A row (or cursor) of a flow's output: input columns pass through; the flow's columns come from the
/// block of draws that holds the row's id (computed on first use, two blocks cached).
/// </summary>
internal sealed class FlowSampleCursor : DataViewRowCursor
{
    private readonly NormalizingFlowTransformer model;
    private readonly DataViewRow input;
    private readonly bool[] active;
    private readonly int inputCount;
    private readonly ValueGetter<DataViewRowId> idGetter;
    private readonly int blockRows;
    private NormalizingFlowTransformer.Block? recent, older;

    public FlowSampleCursor(NormalizingFlowTransformer model, DataViewSchema schema, DataViewRow input, bool[] active, int blockRows)
    {
        this.model = model;
        this.blockRows = blockRows;
        this.input = input;
        this.active = active;
        Schema = schema;
        inputCount = input.Schema.Count;
        idGetter = input.GetIdGetter();
    }

    public override DataViewSchema Schema { get; }
    public override long Position => input.Position;
    public override long Batch => input.Batch;
    public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

    public override bool MoveNext() => input is DataViewRowCursor cursor
        ? cursor.MoveNext()
        : throw new InvalidOperationException("This row is not a cursor.");

    public override bool IsColumnActive(DataViewSchema.Column column)
    {
        if (column.Index < inputCount) return input.IsColumnActive(input.Schema[column.Index]);
        return active[column.Index - inputCount];
    }

    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
    {
        if (column.Index < inputCount) return input.GetGetter<TValue>(input.Schema[column.Index]);
        int k = column.Index - inputCount;
        if (k < 0 || k >= active.Length) throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' is not in this schema.");
        if (!active[k]) throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was created.");
        int d = model.Dimension;
        Delegate getter = k switch
        {
            0 => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
            {
                var (block, offset) = Current();
                var editor = VBufferEditor.Create(ref value, d);
                block.Sample.AsSpan(offset * d, d).CopyTo(editor.Values);
                value = editor.Commit();
            }),
            1 => (ValueGetter<float>)((ref float value) => { var (b, o) = Current(); value = b.LogQ[o]; }),
            2 => (ValueGetter<float>)((ref float value) => { var (b, o) = Current(); value = b.LogP![o]; }),
            3 => (ValueGetter<float>)((ref float value) => { var (b, o) = Current(); value = b.LogWeight![o]; }),
            _ => (ValueGetter<float>)((ref float value) => { var (b, o) = Current(); value = b.Weight![o]; }),
        };
        return getter as ValueGetter<TValue>
            ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}; a getter of {typeof(TValue).Name} was requested.");
    }

    private (NormalizingFlowTransformer.Block Block, int Offset) Current()
    {
        DataViewRowId id = default;
        idGetter(ref id);
        ulong size = (ulong)blockRows;
        ulong index = id.Low / size;
        int offset = (int)(id.Low % size);
        if (recent is not null && recent.Index == index && recent.High == id.High) return (recent, offset);
        if (older is not null && older.Index == index && older.High == id.High)
        {
            (recent, older) = (older, recent);
            return (recent!, offset);
        }
        older = recent;
        recent = model.ComputeBlock(id.High, index, blockRows);
        return (recent, offset);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing && input is DataViewRowCursor) input.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>The row-to-row mapper behind prediction engines: the same computation as the cursor, one row at a time.</summary>
internal sealed class FlowRowMapper(NormalizingFlowTransformer model, DataViewSchema inputSchema) : IRowToRowMapper
{
    public DataViewSchema InputSchema { get; } = inputSchema;
    public DataViewSchema OutputSchema { get; } = model.SampleSchema(inputSchema);

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns) =>
        dependingColumns.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]).ToArray();

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
    {
        ArgumentNullException.ThrowIfNull(input);
        var active = new bool[OutputSchema.Count - InputSchema.Count];
        foreach (var c in activeColumns ?? Enumerable.Empty<DataViewSchema.Column>())
            if (c.Index >= InputSchema.Count) active[c.Index - InputSchema.Count] = true;
        return new FlowSampleCursor(model, OutputSchema, input, active, model.BlockSize);
    }
}

/// <summary>
/// N rows with ids 0 … N − 1 and one column, <see cref="ColumnName"/> (Int64, the row's index): the input of
/// <see cref="NormalizingFlowTransformer.Generate"/> and of <c>CreateEmptyRows</c>. The column is there so that the
/// schema can be saved with a model (<c>mlContext.Model.Save(model, rows.Schema, path)</c>; ML.NET refuses an empty
/// schema with "No valid columns to save").
/// </summary>
internal sealed class RowsDataView : IDataView
{
    public const string ColumnName = "RowIndex";
    private readonly long count;

    public RowsDataView(long count)
    {
        this.count = count;
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(ColumnName, NumberDataViewType.Int64);
        Schema = builder.ToSchema();
    }

    public bool CanShuffle => false;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => count;
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(Schema, count, (columnsNeeded ?? Enumerable.Empty<DataViewSchema.Column>()).Any());
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor(DataViewSchema schema, long count, bool active) : DataViewRowCursor
    {
        private long position = -1;
        public override DataViewSchema Schema => schema;
        public override long Position => position;
        public override long Batch => 0;
        public override bool MoveNext() => position < count && ++position < count;
        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)position, 0);
        public override bool IsColumnActive(DataViewSchema.Column column) => active;
        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index != 0) throw new ArgumentOutOfRangeException(nameof(column), $"Column '{column.Name}' is not in this view.");
            ValueGetter<long> getter = (ref long value) => value = position;
            return getter as ValueGetter<TValue> ?? throw new InvalidOperationException($"Column '{ColumnName}' is Int64; a getter of {typeof(TValue).Name} was requested.");
        }
    }
}

/// <summary>SchemaShape.Create is internal to ML.NET; tests reach it through this.</summary>
internal static class SchemaShapes
{
    public static SchemaShape Of(DataViewSchema schema) => SchemaShape.Create(schema);
}
