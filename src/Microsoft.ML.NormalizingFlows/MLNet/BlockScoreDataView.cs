using Microsoft.ML.Data;

namespace Microsoft.ML.NormalizingFlows.MLNet;

/// <summary>
/// What a scoring transformer computes per row (a density's log q, a table flow's log-likelihood): the input columns
/// it reads, and readers that gather rows into slots and score a block of them in one tensor pass.
/// </summary>
internal interface IRowScorer
{
    /// <summary>The input columns a score depends on.</summary>
    IReadOnlyList<DataViewSchema.Column> SourceColumns { get; }

    /// <summary>The most rows scored in one pass.</summary>
    int BlockRows { get; }

    /// <summary>A reader of <paramref name="row"/>'s source columns (getters made once).</summary>
    RowScoreReader CreateReader(DataViewRow row);
}

/// <summary>Gathers the current row of its <see cref="DataViewRow"/> into a slot, then scores slots 0 … count − 1.</summary>
internal abstract class RowScoreReader
{
    public abstract void Read(int slot);
    public abstract float[] Score(int count);
}

/// <summary>The scored view's schema: the input's columns plus one Single column of scores.</summary>
internal static class ScoreSchemas
{
    public static DataViewSchema Append(DataViewSchema inputSchema, string outputColumnName)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        builder.AddColumn(outputColumnName, NumberDataViewType.Single);
        return builder.ToSchema();
    }
}

/// <summary>The row-to-row mapper of a scoring transformer: one row's score at a time (prediction engines).</summary>
internal sealed class ScoreRowMapper(IRowScorer scorer, DataViewSchema inputSchema, string outputColumnName)
    : IRowToRowMapper
{
    public DataViewSchema InputSchema { get; } = inputSchema;
    public DataViewSchema OutputSchema { get; } = ScoreSchemas.Append(inputSchema, outputColumnName);
    private IRowScorer Scorer => scorer;

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var needed = dependingColumns.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]).ToList();
        if (dependingColumns.Any(c => c.Index >= InputSchema.Count)) needed.AddRange(scorer.SourceColumns);
        return needed.Distinct().ToArray();
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
    {
        ArgumentNullException.ThrowIfNull(input);
        bool scoreActive = (activeColumns ?? Enumerable.Empty<DataViewSchema.Column>()).Any(c => c.Index >= InputSchema.Count);
        return new Row(this, input, scoreActive);
    }

    private sealed class Row(ScoreRowMapper parent, DataViewRow input, bool scoreActive) : DataViewRow
    {
        public override DataViewSchema Schema => parent.OutputSchema;
        public override long Position => input.Position;
        public override long Batch => input.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();
        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index < parent.InputSchema.Count ? input.IsColumnActive(parent.InputSchema[column.Index]) : scoreActive;

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index < parent.InputSchema.Count) return input.GetGetter<TValue>(parent.InputSchema[column.Index]);
            if (!scoreActive) throw new InvalidOperationException($"Column '{column.Name}' was not requested.");
            var reader = parent.Scorer.CreateReader(input);
            ValueGetter<float> getter = (ref float value) =>
            {
                reader.Read(0);
                value = reader.Score(1)[0];
            };
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' has type Single; a getter of {typeof(TValue).Name} was requested.");
        }
    }
}

/// <summary>
/// Input plus a score per row (see <see cref="IRowScorer"/>), computed in blocks. A second cursor over the input reads
/// the score's source columns ahead (blocks grow 1, 2, 4, … up to the model's block size, so a preview of a few rows
/// reads a few rows); each value is matched to the row by id, and a row whose id does not match (a view that
/// does not repeat its order) is computed on its own.
/// </summary>
internal sealed class BlockScoreDataView : IDataView
{
    private readonly IRowScorer scorer;
    private readonly IDataView input;

    public BlockScoreDataView(IRowScorer scorer, IDataView input, string outputColumnName)
    {
        this.scorer = scorer;
        this.input = input;
        Schema = ScoreSchemas.Append(input.Schema, outputColumnName);
    }

    public bool CanShuffle => input.CanShuffle;
    public DataViewSchema Schema { get; }
    public long? GetRowCount() => input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = (columnsNeeded ?? Enumerable.Empty<DataViewSchema.Column>()).ToList();
        bool scoreActive = needed.Any(c => c.Index == input.Schema.Count);
        var inputColumns = needed.Where(c => c.Index < input.Schema.Count).Select(c => input.Schema[c.Index]).ToList();
        if (scoreActive) inputColumns.AddRange(scorer.SourceColumns);
        int? shuffleSeed = rand is null ? null : rand.Next();
        var main = input.GetRowCursor(inputColumns.Distinct(), shuffleSeed is int s1 ? new Random(s1) : null);
        var lead = scoreActive ? input.GetRowCursor(scorer.SourceColumns, shuffleSeed is int s2 ? new Random(s2) : null) : null;
        return new Cursor(this, main, lead, scoreActive);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly BlockScoreDataView parent;
        private readonly DataViewRowCursor main;
        private readonly DataViewRowCursor? lead;
        private readonly bool scoreActive;
        private readonly ValueGetter<DataViewRowId> mainId;
        private readonly ValueGetter<DataViewRowId>? leadId;
        private readonly RowScoreReader? leadReader;
        private readonly RowScoreReader? mainReader;
        private long rowIndex = -1;      // rows the main cursor has moved to
        private long leadIndex = -1;     // rows the lead cursor has moved to
        private long bufferStart;
        private int bufferCount, nextChunk = 1;
        private DataViewRowId[] bufferIds = Array.Empty<DataViewRowId>();
        private float[] bufferScores = Array.Empty<float>();

        public Cursor(BlockScoreDataView parent, DataViewRowCursor main, DataViewRowCursor? lead, bool scoreActive)
        {
            this.parent = parent;
            this.main = main;
            this.lead = lead;
            this.scoreActive = scoreActive;
            mainId = main.GetIdGetter();
            if (lead is not null)
            {
                leadId = lead.GetIdGetter();
                leadReader = parent.scorer.CreateReader(lead);
                mainReader = parent.scorer.CreateReader(main);
            }
        }

        public override DataViewSchema Schema => parent.Schema;
        public override long Position => main.Position;
        public override long Batch => main.Batch;
        public override ValueGetter<DataViewRowId> GetIdGetter() => main.GetIdGetter();

        public override bool MoveNext()
        {
            bool moved = main.MoveNext();
            if (moved) rowIndex++;
            return moved;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index < parent.input.Schema.Count ? main.IsColumnActive(parent.input.Schema[column.Index]) : scoreActive;

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index < parent.input.Schema.Count) return main.GetGetter<TValue>(parent.input.Schema[column.Index]);
            if (!scoreActive) throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was created.");
            ValueGetter<float> getter = (ref float value) => value = Score();
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"Column '{column.Name}' has type Single; a getter of {typeof(TValue).Name} was requested.");
        }

        private float Score()
        {
            DataViewRowId id = default;
            mainId(ref id);
            if (rowIndex < bufferStart || rowIndex >= bufferStart + bufferCount) Fill();
            long k = rowIndex - bufferStart;
            if (k >= 0 && k < bufferCount && bufferIds[k].Equals(id)) return bufferScores[k];
            // The lead cursor saw a different row here: compute this one alone.
            mainReader!.Read(0);
            return mainReader.Score(1)[0];
        }

        private void Fill()
        {
            // Skip the lead cursor to the current row.
            while (leadIndex < rowIndex && lead!.MoveNext()) leadIndex++;
            bufferStart = leadIndex;
            bufferCount = 0;
            if (leadIndex != rowIndex) return;
            int chunk = nextChunk;
            nextChunk = Math.Min(nextChunk * 2, parent.scorer.BlockRows);
            if (bufferIds.Length < chunk) { bufferIds = new DataViewRowId[chunk]; }
            while (true)
            {
                leadId!(ref bufferIds[bufferCount]);
                leadReader!.Read(bufferCount);
                bufferCount++;
                if (bufferCount == chunk || !lead!.MoveNext()) break;
                leadIndex++;
            }
            bufferScores = leadReader!.Score(bufferCount);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) { main.Dispose(); lead?.Dispose(); }
            base.Dispose(disposing);
        }
    }
}

