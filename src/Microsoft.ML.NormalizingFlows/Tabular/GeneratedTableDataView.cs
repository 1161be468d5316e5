using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.MLNet;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>
/// Synthetic rows, made lazily a block at a time (<see cref="TabularFlowTransformer.BlockRows"/>), so a cursor over
/// ten million rows holds one block. Block b's draws come from a generator seeded from (model seed, b) and its
/// contexts from <c>contextIndices(b, count)</c> (indices into <c>contextRows</c>), so the rows depend only on
/// the model, its seed and the row count (the last block's size changes its draws).
/// </summary>
internal sealed class GeneratedTableDataView : IDataView
{
    private readonly TabularFlowTransformer model;
    private readonly long count;
    private readonly Func<long, int, int[]?> contextIndices;
    private readonly Array[] contextValues;     // typed values of the context rows, one array per context column
    private readonly Tensor? contextFeatures;   // the conditioner input of the context rows [rows, width]
    private readonly int[] sourceOfColumn;      // output column → modelled index (≥ 0) or ~context index

    public GeneratedTableDataView(TabularFlowTransformer model, long count, TableColumn[] contextRows, Func<long, int, int[]?> contextIndices)
    {
        this.model = model;
        this.count = count;
        this.contextIndices = contextIndices;
        var codec = model.Codec;
        // Encoding the contexts first checks them: a value never seen in training is an ArgumentException naming it.
        if (contextRows.Length > 0)
        {
            var (dtype, device) = model.Flow.Placement;
            contextFeatures = codec.ContextTensor(contextRows, dtype, device)!.DetachFromDisposeScope();
        }
        contextValues = contextRows.Select((c, j) => c.Numbers is not null
            ? TypedColumns.FromNumbers(c.Type, c.Numbers) : TypedColumns.FromLevels(c.Type, c.Levels!, codec.KeyNamesOf(codec.Context[j]))).ToArray();
        Schema = model.GeneratedSchema;
        sourceOfColumn = Schema.Select(c =>
        {
            int m = codec.Modelled.Select(e => e.Name).ToList().IndexOf(c.Name);
            return m >= 0 ? m : ~codec.Context.Select(e => e.Name).ToList().IndexOf(c.Name);
        }).ToArray();
    }

    public bool CanShuffle => false;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => count;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(this);

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded, rand) };

    private (Array[] Modelled, Array[] Context) MakeBlock(long block)
    {
        long start = block * model.BlockRows;
        int rows = (int)Math.Min(model.BlockRows, count - start);
        var indices = contextIndices(block, rows);
        Tensor? features = null;
        Array[] context = Array.Empty<Array>();
        if (indices is not null && contextFeatures is not null)
        {
            using var index = torch.tensor(indices.Select(i => (long)i).ToArray(), device: contextFeatures.device);
            features = contextFeatures.index_select(0, index);
            context = contextValues.Select(values =>
            {
                var gathered = Array.CreateInstance(values.GetType().GetElementType()!, rows);
                for (int i = 0; i < rows; i++) gathered.SetValue(values.GetValue(indices[i]), i);
                return gathered;
            }).ToArray();
        }
        try
        {
            return (model.SampleBlock(rows, features, NormalizingFlowTransformer.BlockSeed(model.Seed, 2, (ulong)block)), context);
        }
        finally { features?.Dispose(); }
    }

    private sealed class Cursor(GeneratedTableDataView parent) : DataViewRowCursor
    {
        private long position = -1, block = -1;
        private Array[] modelled = Array.Empty<Array>(), context = Array.Empty<Array>();

        public override DataViewSchema Schema => parent.Schema;
        public override long Position => position;
        public override long Batch => 0;
        public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)position, 0);
        public override bool IsColumnActive(DataViewSchema.Column column) => true;

        public override bool MoveNext()
        {
            if (position + 1 >= parent.count) { position = parent.count; return false; }
            position++;
            long b = position / parent.model.BlockRows;
            if (b != block) { (modelled, context) = parent.MakeBlock(b); block = b; }
            return true;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int source = parent.sourceOfColumn[column.Index];
            ValueGetter<TValue> getter = (ref TValue value) =>
            {
                var values = source >= 0 ? modelled[source] : context[~source];
                value = ((TValue[])values)[position - block * parent.model.BlockRows];
            };
            var expected = column.Type.RawType;
            if (typeof(TValue) != expected)
                throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}; a getter of {typeof(TValue).Name} was requested.");
            return getter;
        }
    }
}
