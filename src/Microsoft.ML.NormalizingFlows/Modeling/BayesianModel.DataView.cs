using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.NormalizingFlows.Modeling;

public sealed partial class BayesianModel
{
    /// <summary>
    /// Binds a column of an <see cref="IDataView"/>, read once: Single/Double as real data; Int32/Int64/Boolean and
    /// key columns (e.g. from <c>MapValueToKey</c>, as 0-based indices) as integer data; a known-size vector column as a
    /// [rows, size] matrix. A missing value (NaN, or key 0) is an error naming the row.
    /// </summary>
    public BayesianModel Data(string name, IDataView dataView, string columnName)
    {
        ArgumentNullException.ThrowIfNull(dataView);
        ArgumentException.ThrowIfNullOrWhiteSpace(columnName);
        var column = dataView.Schema.GetColumnOrNull(columnName)
            ?? throw new ArgumentOutOfRangeException(nameof(columnName), $"Column '{columnName}' was not found (columns: {string.Join(", ", dataView.Schema.Where(c => !c.IsHidden).Select(c => c.Name))}).");
        var type = column.Type;
        int width = 1;
        if (type is VectorDataViewType vector)
        {
            if (!vector.IsKnownSize) throw new ArgumentException($"Column '{columnName}' is a variable-size vector; bind known-size vectors only.", nameof(columnName));
            width = vector.Size;
            type = vector.ItemType;
        }
        using var cursor = dataView.GetRowCursor(new[] { column });
        if (ColumnReaders.IsReal(type))
        {
            var values = new List<double>();
            var read = RealReader(cursor, column, type, width);
            while (cursor.MoveNext())
            {
                int start = values.Count;
                read(values);
                for (int i = start; i < values.Count; i++)
                    if (!double.IsFinite(values[i])) throw new ArgumentException($"Column '{columnName}' has a missing or non-finite value at row {cursor.Position}.", nameof(dataView));
            }
            return Data(name, values.ToArray(), Shape(values.Count, width, column.Type));
        }
        var integers = new List<long>();
        var readInteger = IntegerReader(cursor, column, type, width, columnName);
        while (cursor.MoveNext()) readInteger(integers, cursor.Position);
        return Data(name, integers.ToArray(), Shape(integers.Count, width, column.Type));
    }

    private static long[] Shape(int count, int width, DataViewType type) =>
        type is VectorDataViewType ? new long[] { count / Math.Max(1, width), width } : new long[] { count };

    private static Action<List<double>> RealReader(DataViewRowCursor cursor, DataViewSchema.Column column, DataViewType item, int width)
    {
        if (column.Type is VectorDataViewType)
        {
            if (item == NumberDataViewType.Single)
            {
                var get = cursor.GetGetter<VBuffer<float>>(column);
                VBuffer<float> buffer = default;
                return list => { get(ref buffer); foreach (var v in buffer.DenseValues()) list.Add(v); };
            }
            var getD = cursor.GetGetter<VBuffer<double>>(column);
            VBuffer<double> bufferD = default;
            return list => { getD(ref bufferD); foreach (var v in bufferD.DenseValues()) list.Add(v); };
        }
        var read = ColumnReaders.Real(cursor, column);
        return list => list.Add(read());
    }

    private static Action<List<long>, long> IntegerReader(DataViewRowCursor cursor, DataViewSchema.Column column, DataViewType item, int width, string columnName)
    {
        if (column.Type is VectorDataViewType) throw new ArgumentException($"Column '{columnName}': integer and key vectors are not supported; bind them per column.", nameof(columnName));
        if (!ColumnReaders.IsInteger(item))
            throw new ArgumentException($"Column '{columnName}' has type {column.Type}; bind Single, Double, Int32, Int64, Boolean or key columns (map text to keys with MapValueToKey).", nameof(columnName));
        var read = ColumnReaders.Integer(cursor, column, message => new ArgumentException(message, nameof(columnName)));
        return (list, _) => list.Add(read());
    }
}
