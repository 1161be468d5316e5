using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling;

/// <summary>
/// Rows of an <see cref="IDataView"/> streamed in minibatches for a likelihood too large for memory (doubly stochastic
/// VI): each log-density evaluation sees B rows and the scale N/B, so Σ over the batch × N/B is an unbiased estimate of
/// the sum over all N rows. Rows come from a shuffled cursor (ML.NET's ShuffleRows buffer when the view cannot shuffle
/// itself), a new pass each epoch; only one batch is in memory. Columns are read as in
/// <see cref="BayesianModel.Data(string, IDataView, string)"/>: Single/Double as reals, Int32/Int64/Boolean/keys as
/// int64 indices.
/// </summary>
public sealed class MinibatchSource
{
    private readonly IDataView data;
    private readonly DataViewSchema.Column[] columns;
    private readonly Random random;
    /// <summary>The view as given, read in order by <see cref="EveryRowOnce"/>.</summary>
    private readonly IDataView original;

    internal MinibatchSource(MLContext mlContext, IDataView data, int batchSize, string[] columnNames, int seed)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(data);
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The minibatch size must be positive.");
        if (columnNames is null || columnNames.Length == 0) throw new ArgumentException("Name at least one column to stream.", nameof(columnNames));
        original = data;
        this.data = data.CanShuffle ? data : mlContext.Data.ShuffleRows(data, seed, shufflePoolSize: 100_000);
        columns = columnNames.Select(n => this.data.Schema.GetColumnOrNull(n)
            ?? throw new ArgumentOutOfRangeException(nameof(columnNames), $"Column '{n}' was not found (columns: {string.Join(", ", data.Schema.Where(c => !c.IsHidden).Select(c => c.Name))}).")).ToArray();
        foreach (var c in columns)
            if (!ColumnReaders.IsReal(c.Type) && !ColumnReaders.IsInteger(c.Type))
                throw new ArgumentException($"Column '{c.Name}' has type {c.Type}; stream Single, Double, Int32, Int64, Boolean or key columns.", nameof(columnNames));
        BatchSize = batchSize;
        random = new Random(seed);
        long rows = 0;
        using (var counter = this.data.GetRowCursor(Array.Empty<DataViewSchema.Column>()))
            while (counter.MoveNext()) rows++;
        if (rows == 0) throw new ArgumentException("The data view has no rows.", nameof(data));
        Rows = rows;
    }

    /// <summary>N, the rows of the data.</summary>
    public long Rows { get; }

    /// <summary>B, the rows per minibatch.</summary>
    public int BatchSize { get; }

    /// <summary>The names of the streamed columns.</summary>
    public IEnumerable<string> ColumnNames => columns.Select(c => c.Name);

    /// <summary>
    /// The next B rows (wrapping into a new shuffled pass at the end of the data): real columns as float64, the others
    /// as int64. The batch after it is read on a worker thread meanwhile, so that parsing and shuffling rows (about
    /// 100,000 rows/s through ML.NET's text loader and ShuffleRows here) overlap the training step instead of adding
    /// to it. The worker fills managed arrays only; tensors are made here, on the caller's thread and dispose scope.
    /// </summary>
    internal Dictionary<string, Tensor> Next()
    {
        var (reals, integers) = prefetch is { } pending ? pending.GetAwaiter().GetResult() : Read(filling);
        int next = filling ^= 1;
        prefetch = Task.Run(() => Read(next));
        var batch = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int j = 0; j < columns.Length; j++)
            batch[columns[j].Name] = reals[j] is { } r ? torch.tensor(r, ScalarType.Float64) : torch.tensor(integers[j]!);
        return batch;
    }

    private Task<(double[]?[] Reals, long[]?[] Integers)>? prefetch;

    /// <summary>The buffer set the pending prefetch fills (the first read, with none pending, fills set 0).</summary>
    private int filling;

    /// <summary>
    /// Two sets of row buffers, used in turn: the worker fills one while the caller copies the other into tensors. Why
    /// not new arrays per batch: at 20,000 rows each column's array is a large object, and the collections such
    /// allocations force while libtorch works are what once finalized a temporary Scalar in use (README, "Scalars and
    /// the garbage collector").
    /// </summary>
    private readonly (double[]?[] Reals, long[]?[] Integers)?[] buffers = new (double[]?[] Reals, long[]?[] Integers)?[2];

    /// <summary>Reads B rows from the shuffled cursor into buffer set <paramref name="set"/>, wrapping into a new pass (one reader at a time: Next waits for the previous read before starting one).</summary>
    private (double[]?[] Reals, long[]?[] Integers) Read(int set)
    {
        var (reals, integers) = buffers[set] ??= NewBatch(BatchSize);
        int filled = rows?.Fill(reals, integers, 0, BatchSize) ?? 0;
        while (filled < BatchSize)
        {
            // The pass has ended (or none began): a new shuffled pass.
            rows?.Dispose();
            rows = new RowReader(data, columns, new Random(random.Next()));
            int read = rows.Fill(reals, integers, filled, BatchSize);
            if (read == 0) throw new InvalidOperationException("The data view has no rows.");
            filled += read;
        }
        return (reals, integers);
    }

    private RowReader? rows;

    /// <summary>
    /// Every row exactly once, in the view's own order, in batches of B (the last one shorter), as float64 on the CPU
    /// with the scale N/B: what a statistic of the whole data (a control variate's expansion) needs. Each batch's
    /// tensors are disposed when the enumeration moves on. The shuffled stream is not touched.
    /// </summary>
    internal IEnumerable<MinibatchRows> EveryRowOnce()
    {
        using var reader = new RowReader(original, columns, random: null);
        using var reference = torch.zeros(1, dtype: ScalarType.Float64);
        var (reals, integers) = NewBatch(BatchSize); // one set for the whole pass: each batch is copied into tensors
        while (true)
        {
            int count = reader.Fill(reals, integers, 0, BatchSize);
            if (count == 0) yield break;
            var batch = new Dictionary<string, Tensor>(StringComparer.Ordinal);
            for (int j = 0; j < columns.Length; j++)
                batch[columns[j].Name] = reals[j] is { } r ? torch.tensor(count == BatchSize ? r : r[..count], ScalarType.Float64)
                    : torch.tensor(count == BatchSize ? integers[j]! : integers[j]![..count]);
            yield return new MinibatchRows(batch, Rows / (double)BatchSize, reference);
            foreach (var column in batch.Values) column.Dispose();
            if (count < BatchSize) yield break;
        }
    }

    private (double[]?[] Reals, long[]?[] Integers) NewBatch(int size) =>
        (columns.Select(c => ColumnReaders.IsReal(c.Type) ? new double[size] : null).ToArray(),
         columns.Select(c => ColumnReaders.IsReal(c.Type) ? null : new long[size]).ToArray());

    /// <summary>One cursor over the streamed columns and its typed getters.</summary>
    private sealed class RowReader : IDisposable
    {
        private readonly DataViewRowCursor cursor;
        private readonly DataViewSchema.Column[] columns;
        private readonly Func<double>?[] realReaders;
        private readonly Func<long>?[] integerReaders;

        public RowReader(IDataView data, DataViewSchema.Column[] columns, Random? random)
        {
            this.columns = columns;
            cursor = random is null ? data.GetRowCursor(columns) : data.GetRowCursor(columns, random);
            realReaders = columns.Select(c => ColumnReaders.IsReal(c.Type) ? ColumnReaders.Real(cursor, c) : null).ToArray();
            integerReaders = columns.Select(c => ColumnReaders.IsReal(c.Type) ? null
                : ColumnReaders.Integer(cursor, c, message => new InvalidOperationException(message))).ToArray();
        }

        /// <summary>Fills rows <paramref name="offset"/> to <paramref name="end"/> − 1, or until the cursor ends; returns how many it filled.</summary>
        public int Fill(double[]?[] reals, long[]?[] integers, int offset, int end)
        {
            int row = offset;
            for (; row < end; row++)
            {
                if (!cursor.MoveNext()) break;
                for (int j = 0; j < columns.Length; j++)
                {
                    if (reals[j] is { } r)
                    {
                        double value = realReaders[j]!();
                        r[row] = double.IsFinite(value) ? value
                            : throw new InvalidOperationException($"Column '{columns[j].Name}' has a missing or non-finite value ({value}) at row {cursor.Position}.");
                    }
                    else integers[j]![row] = integerReaders[j]!();
                }
            }
            return row - offset;
        }

        public void Dispose() => cursor.Dispose();
    }
}

/// <summary>One minibatch as a log density sees it: the columns on the batch's dtype and device, and the scale N/B.</summary>
public sealed class MinibatchRows
{
    private readonly Dictionary<string, Tensor> columns;
    private readonly Tensor reference;

    internal MinibatchRows(Dictionary<string, Tensor> columns, double scale, Tensor reference)
    {
        this.columns = columns;
        Scale = scale;
        this.reference = reference;
    }

    /// <summary>N/B: multiply the batch's summed log-likelihood by it for an unbiased estimate of the full sum.</summary>
    public double Scale { get; }

    /// <summary>A streamed column: reals in the batch's dtype, integers as int64, on its device.</summary>
    public Tensor this[string column]
    {
        get
        {
            if (!columns.TryGetValue(column, out var t)) throw new KeyNotFoundException($"Column '{column}' is not streamed. Streamed: {string.Join(", ", columns.Keys)}.");
            return t.is_floating_point() ? t.to(reference.dtype, reference.device) : t.to(reference.device);
        }
    }

    /// <summary>Σ over the batch of per-row log-likelihoods [P, B] × N/B → [P]: the unbiased full-data log-likelihood.</summary>
    public Tensor ScaledSum(Tensor perRow) => perRow.sum(-1) * S(Scale);
}
