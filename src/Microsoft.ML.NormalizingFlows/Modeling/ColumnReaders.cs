using Microsoft.ML;
using Microsoft.ML.Data;

namespace Microsoft.ML.NormalizingFlows.Modeling;

/// <summary>
/// How a model reads a scalar column of an <see cref="IDataView"/>, shared by data binding and minibatch streaming:
/// Single/Double as reals; Int32, Int64, Boolean (0/1) and uint keys (as 0-based indices) as integers. A missing key
/// is an error naming the column and row, raised through <c>error</c> so each caller keeps its exception type.
/// </summary>
internal static class ColumnReaders
{
    public static bool IsReal(DataViewType type) => type == NumberDataViewType.Single || type == NumberDataViewType.Double;

    public static bool IsInteger(DataViewType type) =>
        type == NumberDataViewType.Int32 || type == NumberDataViewType.Int64 || type == BooleanDataViewType.Instance
        || type is KeyDataViewType { RawType: var raw } && raw == typeof(uint);

    /// <summary>The current row's value of a real column.</summary>
    public static Func<double> Real(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        if (column.Type == NumberDataViewType.Single) { var g = cursor.GetGetter<float>(column); float v = 0; return () => { g(ref v); return v; }; }
        var getDouble = cursor.GetGetter<double>(column);
        double d = 0;
        return () => { getDouble(ref d); return d; };
    }

    /// <summary>The current row's value of an integer, Boolean or key column (keys 0-based).</summary>
    public static Func<long> Integer(DataViewRowCursor cursor, DataViewSchema.Column column, Func<string, Exception> error)
    {
        var type = column.Type;
        if (type == NumberDataViewType.Int32) { var g = cursor.GetGetter<int>(column); int v = 0; return () => { g(ref v); return v; }; }
        if (type == NumberDataViewType.Int64) { var g = cursor.GetGetter<long>(column); long v = 0; return () => { g(ref v); return v; }; }
        if (type == BooleanDataViewType.Instance) { var g = cursor.GetGetter<bool>(column); bool v = false; return () => { g(ref v); return v ? 1 : 0; }; }
        var key = cursor.GetGetter<uint>(column);
        uint k = 0;
        return () =>
        {
            key(ref k);
            if (k == 0) throw error($"Column '{column.Name}' has a missing key at row {cursor.Position}.");
            return k - 1;
        };
    }
}
