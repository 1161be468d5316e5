using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>
/// A streamed test input: <c>rowCount</c> rows (can be huge; nothing is stored), a known-size vector column
/// "Features" whose values are a function of the row index, rows visited in a chosen order with ids equal to
/// the row index, and a count of how many row values were produced (to check laziness).
/// </summary>
internal sealed class StreamedVectorView : IDataView
{
    private readonly long rowCount;
    private readonly Func<long, long>? order;
    private readonly Func<long, int, float> value;
    private readonly int dimension;
    private long valuesRead;
    private long rowsVisited;

    public StreamedVectorView(long rowCount, int dimension, Func<long, int, float> value, Func<long, long>? order = null, DataViewType? type = null)
    {
        this.rowCount = rowCount;
        this.dimension = dimension;
        this.value = value;
        this.order = order;
        var builder = new DataViewSchema.Builder();
        builder.AddColumn("Features", type ?? new VectorDataViewType(NumberDataViewType.Single, dimension));
        Schema = builder.ToSchema();
    }

    public long ValuesRead => Interlocked.Read(ref valuesRead);
    public long RowsVisited => Interlocked.Read(ref rowsVisited);
    public bool CanShuffle => false;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => rowCount;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(this, 0, 1);

    /// <summary>n cursors that interleave the rows (cursor k visits positions k, k + n, …).</summary>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        Enumerable.Range(0, Math.Max(1, n)).Select(k => (DataViewRowCursor)new Cursor(this, k, Math.Max(1, n))).ToArray();

    private sealed class Cursor(StreamedVectorView view, long start, long stride) : DataViewRowCursor
    {
        private long position = -1;
        private long slot = -1;
        public override DataViewSchema Schema => view.Schema;
        public override long Position => position;
        public override long Batch => 0;
        private long Row => view.order is null ? slot : view.order(slot);

        public override bool MoveNext()
        {
            long next = slot < 0 ? start : slot + stride;
            if (next >= view.rowCount) return false;
            slot = next;
            position++;
            Interlocked.Increment(ref view.rowsVisited);
            return true;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)Row, 0);
        public override bool IsColumnActive(DataViewSchema.Column column) => true;

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int d = view.dimension;
            ValueGetter<VBuffer<float>> getter = (ref VBuffer<float> dst) =>
            {
                Interlocked.Increment(ref view.valuesRead);
                var editor = VBufferEditor.Create(ref dst, d);
                for (int j = 0; j < d; j++) editor.Values[j] = view.value(Row, j);
                dst = editor.Commit();
            };
            return (ValueGetter<TValue>)(Delegate)getter;
        }
    }
}
