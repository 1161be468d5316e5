using Microsoft.ML.NormalizingFlows.Tensors;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Regression;

/// <summary>
/// A regression design X [rows, columns] with few nonzeros per row, stored by rows (compressed sparse rows, the form
/// Stan's <c>csr_matrix_times_vector</c> takes). A multilevel model's design is mostly one-hot group indicators: the
/// MRP survey's 102 columns hold 9 nonzeros per row (an intercept, two covariates, six groups), so a row's linear
/// predictor x_r · β is 9 multiply–adds, not 102.
/// </summary>
public sealed class SparseDesign
{
    /// <summary>Where row r's entries start in <see cref="ColumnIndices"/> and <see cref="Values"/>; <c>RowStarts[Rows]</c> is the count.</summary>
    internal int[] RowStarts { get; }
    internal int[] ColumnIndices { get; }
    internal double[] Values { get; }

    /// <summary>The number of rows (observations, or cells of aggregated observations).</summary>
    public int Rows { get; }

    /// <summary>The number of columns (coefficients).</summary>
    public int Columns { get; }

    /// <summary>The number of stored (nonzero) entries.</summary>
    public int NonZeros => RowStarts[Rows];

    /// <summary>Xᵀ dense, built on first use: only the tensor path (devices other than CPU) reads it.</summary>
    private readonly Lazy<CachedConstant> denseTransposed;

    private SparseDesign(int rows, int columns, int[] rowStarts, int[] columnIndices, double[] values)
    {
        (Rows, Columns, RowStarts, ColumnIndices, Values) = (rows, columns, rowStarts, columnIndices, values);
        denseTransposed = new Lazy<CachedConstant>(() => new CachedConstant(Dense(transposed: true), columns, rows));
    }

    /// <summary>The design as a dense row-major [rows, columns] array (zeros included).</summary>
    public double[] ToDense() => Dense(transposed: false);

    private double[] Dense(bool transposed)
    {
        var dense = new double[(long)Columns * Rows];
        for (int r = 0; r < Rows; r++)
            for (int at = RowStarts[r]; at < RowStarts[r + 1]; at++)
                dense[transposed ? (long)ColumnIndices[at] * Rows + r : (long)r * Columns + ColumnIndices[at]] += Values[at];
        return dense;
    }

    /// <summary>A design from its dense values, row-major [rows, columns]; zeros are not stored.</summary>
    public static SparseDesign FromDense(double[] values, int rows, int columns)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (rows < 0) throw new ArgumentOutOfRangeException(nameof(rows), rows, "The number of rows must not be negative.");
        if (columns < 1) throw new ArgumentOutOfRangeException(nameof(columns), columns, "A design needs at least one column.");
        if (values.LongLength != (long)rows * columns)
            throw new ArgumentException($"Expected rows × columns = {rows} × {columns} = {(long)rows * columns} values but got {values.Length}.", nameof(values));
        int firstBad = Array.FindIndex(values, v => !double.IsFinite(v));
        if (firstBad >= 0)
            throw new ArgumentException($"Row {firstBad / columns}, column {firstBad % columns} is {values[firstBad]}; a design's values must be finite.", nameof(values));
        var entries = new List<(int Column, double Value)>[rows];
        for (int r = 0; r < rows; r++)
        {
            entries[r] = new List<(int, double)>();
            for (int j = 0; j < columns; j++)
                if (values[r * columns + j] != 0) entries[r].Add((j, values[r * columns + j]));
        }
        return FromRows(columns, entries);
    }

    /// <summary>A design from each row's (column, value) entries; a column given twice in a row adds up.</summary>
    public static SparseDesign FromRows(int columns, IReadOnlyList<IReadOnlyList<(int Column, double Value)>> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (columns < 1) throw new ArgumentOutOfRangeException(nameof(columns), columns, "A design needs at least one column.");
        var starts = new int[rows.Count + 1];
        var indices = new List<int>();
        var values = new List<double>();
        for (int r = 0; r < rows.Count; r++)
        {
            foreach (var (column, value) in rows[r] ?? throw new ArgumentException($"Row {r} is null.", nameof(rows)))
            {
                if (column < 0 || column >= columns)
                    throw new ArgumentOutOfRangeException(nameof(rows), column, $"Row {r} has an entry in column {column}; the design's columns are 0 … {columns - 1}.");
                if (!double.IsFinite(value))
                    throw new ArgumentException($"Row {r}, column {column} is {value}; a design's values must be finite.", nameof(rows));
                indices.Add(column);
                values.Add(value);
            }
            starts[r + 1] = indices.Count;
        }
        return new SparseDesign(rows.Count, columns, starts, indices.ToArray(), values.ToArray());
    }

    /// <summary>
    /// A multilevel design without forming its dense matrix: the <paramref name="covariates"/> as columns (an intercept
    /// is a column of ones), then for each group its levels' one-hot indicators, in the order given. Row r's group g
    /// has level <c>groups[g].Levels[r]</c> in 0 … <c>groups[g].Count</c> − 1.
    /// </summary>
    /// <param name="covariates">Dense columns, each one value per row.</param>
    /// <param name="groups">Each group's level per row and its number of levels.</param>
    public static SparseDesign Multilevel(IReadOnlyList<double[]> covariates, IReadOnlyList<(int[] Levels, int Count)> groups)
    {
        ArgumentNullException.ThrowIfNull(covariates);
        ArgumentNullException.ThrowIfNull(groups);
        if (covariates.Count + groups.Count == 0) throw new ArgumentException("A design needs at least one covariate or group.", nameof(covariates));
        int rows = covariates.Count > 0 ? covariates[0]?.Length ?? 0 : groups[0].Levels?.Length ?? 0;
        for (int c = 0; c < covariates.Count; c++)
        {
            if (covariates[c] is null || covariates[c].Length != rows)
                throw new ArgumentException($"Covariate {c} has {covariates[c]?.Length.ToString() ?? "no"} values; expected one per row ({rows}).", nameof(covariates));
            int bad = Array.FindIndex(covariates[c], v => !double.IsFinite(v));
            if (bad >= 0) throw new ArgumentException($"Covariate {c}, row {bad} is {covariates[c][bad]}; a design's values must be finite.", nameof(covariates));
        }
        int columns = covariates.Count;
        for (int g = 0; g < groups.Count; g++)
        {
            var (levels, count) = groups[g];
            if (count < 1) throw new ArgumentOutOfRangeException(nameof(groups), count, $"Group {g} must have at least one level.");
            if (levels is null || levels.Length != rows)
                throw new ArgumentException($"Group {g} has {levels?.Length.ToString() ?? "no"} levels; expected one per row ({rows}).", nameof(groups));
            int bad = Array.FindIndex(levels, l => l < 0 || l >= count);
            if (bad >= 0) throw new ArgumentOutOfRangeException(nameof(groups), levels[bad], $"Group {g}, row {bad} has level {levels[bad]}; its levels are 0 … {count - 1}.");
            columns += count;
        }
        int perRow = covariates.Count + groups.Count;
        var starts = new int[rows + 1];
        var indices = new int[rows * perRow];
        var values = new double[rows * perRow];
        for (int r = 0; r < rows; r++)
        {
            int at = r * perRow, column = 0;
            for (int c = 0; c < covariates.Count; c++, at++) (indices[at], values[at], column) = (column, covariates[c][r], column + 1);
            foreach (var (levels, count) in groups)
            {
                (indices[at], values[at]) = (column + levels[r], 1.0);
                at++;
                column += count;
            }
            starts[r + 1] = at;
        }
        return new SparseDesign(rows, columns, starts, indices, values);
    }

    /// <summary>Xᵀ [columns, rows] as a dense tensor in the dtype and on the device of <paramref name="like"/> (converted once, then reused).</summary>
    internal Tensor DenseTransposed(Tensor like) => denseTransposed.Value.Like(like);
}
