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
    private DataViewRowCursor? cursor;
    private Func<double>?[]? realReaders;
    private Func<long>?[]? integerReaders;

    internal MinibatchSource(MLContext mlContext, IDataView data, int batchSize, string[] columnNames, int seed)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentNullException.ThrowIfNull(data);
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The minibatch size must be positive.");
        if (columnNames is null || columnNames.Length == 0) throw new ArgumentException("Name at least one column to stream.", nameof(columnNames));
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
        var (reals, integers) = prefetch is { } pending ? pending.GetAwaiter().GetResult() : Read();
        prefetch = Task.Run(Read);
        var batch = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int j = 0; j < columns.Length; j++)
            batch[columns[j].Name] = reals[j] is { } r ? torch.tensor(r, ScalarType.Float64) : torch.tensor(integers[j]!);
        return batch;
    }

    private Task<(double[]?[] Reals, long[]?[] Integers)>? prefetch;

    /// <summary>Reads B rows from the cursor (one reader at a time: Next waits for the previous read before starting one).</summary>
    private (double[]?[] Reals, long[]?[] Integers) Read()
    {
        var reals = columns.Select(c => ColumnReaders.IsReal(c.Type) ? new double[BatchSize] : null).ToArray();
        var integers = columns.Select(c => ColumnReaders.IsReal(c.Type) ? null : new long[BatchSize]).ToArray();
        for (int row = 0; row < BatchSize; row++)
        {
            if (cursor is null || !cursor.MoveNext())
            {
                cursor?.Dispose();
                cursor = data.GetRowCursor(columns, new Random(random.Next()));
                var current = cursor;
                realReaders = columns.Select(c => ColumnReaders.IsReal(c.Type) ? ColumnReaders.Real(current, c) : null).ToArray();
                integerReaders = columns.Select(c => ColumnReaders.IsReal(c.Type) ? null
                    : ColumnReaders.Integer(current, c, message => new InvalidOperationException(message))).ToArray();
                if (!cursor.MoveNext()) throw new InvalidOperationException("The data view has no rows.");
            }
            for (int j = 0; j < columns.Length; j++)
            {
                if (reals[j] is { } r)
                {
                    double value = realReaders![j]!();
                    r[row] = double.IsFinite(value) ? value
                        : throw new InvalidOperationException($"Column '{columns[j].Name}' has a missing or non-finite value ({value}) at row {cursor.Position}.");
                }
                else integers[j]![row] = integerReaders![j]!();
            }
        }
        return (reals, integers);
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
