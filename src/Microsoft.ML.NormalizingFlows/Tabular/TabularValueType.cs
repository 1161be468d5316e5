using Microsoft.ML.Data;

namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>The scalar ML.NET types a table column may have, so generated rows come back with the input's types.</summary>
public enum TabularValueType
{
    Single, Double, SByte, Byte, Int16, UInt16, Int32, UInt32, Int64, UInt64, Boolean, Text, Key,
}

/// <summary>Reading and writing the supported scalar types (one getter per column, no boxing per value).</summary>
internal static class TabularValueTypes
{
    /// <summary>The supported type of <paramref name="column"/>, or a specific exception naming the column and its type.</summary>
    public static (TabularValueType Type, ulong KeyCount) Of(DataViewSchema.Column column)
    {
        var type = column.Type;
        if (type is KeyDataViewType key)
        {
            if (key.RawType != typeof(uint) || key.Count == 0 || key.Count > int.MaxValue)
                throw new NotSupportedException($"Column '{column.Name}' is a key of {key.RawType.Name} with count {key.Count}; only uint keys with a known count can be modelled (convert it with MapKeyToValue or MapValueToKey).");
            return (TabularValueType.Key, key.Count);
        }
        if (type is TextDataViewType) return (TabularValueType.Text, 0);
        if (type is BooleanDataViewType) return (TabularValueType.Boolean, 0);
        if (type is NumberDataViewType)
        {
            var raw = type.RawType;
            foreach (TabularValueType t in Enum.GetValues<TabularValueType>())
                if (t <= TabularValueType.UInt64 && ClrType(t) == raw) return (t, 0);
        }
        throw new NotSupportedException(
            $"Column '{column.Name}' has type {type}, which a table flow cannot model. Supported: Single, Double, integer, Boolean, text and key columns " +
            "(vectors: split them into scalar columns; dates: convert them to numbers).");
    }

    public static bool IsNumeric(TabularValueType t) => t <= TabularValueType.UInt64;
    public static bool IsInteger(TabularValueType t) => t is >= TabularValueType.SByte and <= TabularValueType.UInt64;

    public static Type ClrType(TabularValueType t) => t switch
    {
        TabularValueType.Single => typeof(float), TabularValueType.Double => typeof(double), TabularValueType.SByte => typeof(sbyte),
        TabularValueType.Byte => typeof(byte), TabularValueType.Int16 => typeof(short), TabularValueType.UInt16 => typeof(ushort),
        TabularValueType.Int32 => typeof(int), TabularValueType.UInt32 => typeof(uint), TabularValueType.Int64 => typeof(long),
        TabularValueType.UInt64 => typeof(ulong), TabularValueType.Boolean => typeof(bool), TabularValueType.Text => typeof(ReadOnlyMemory<char>),
        TabularValueType.Key => typeof(uint), _ => throw new ArgumentOutOfRangeException(nameof(t), t, "Unknown value type."),
    };

    public static DataViewType DataViewTypeOf(TabularValueType t, ulong keyCount) => t switch
    {
        TabularValueType.Boolean => BooleanDataViewType.Instance,
        TabularValueType.Text => TextDataViewType.Instance,
        TabularValueType.Key => new KeyDataViewType(typeof(uint), keyCount),
        TabularValueType.Single => NumberDataViewType.Single,
        TabularValueType.Double => NumberDataViewType.Double,
        TabularValueType.SByte => NumberDataViewType.SByte,
        TabularValueType.Byte => NumberDataViewType.Byte,
        TabularValueType.Int16 => NumberDataViewType.Int16,
        TabularValueType.UInt16 => NumberDataViewType.UInt16,
        TabularValueType.Int32 => NumberDataViewType.Int32,
        TabularValueType.UInt32 => NumberDataViewType.UInt32,
        TabularValueType.Int64 => NumberDataViewType.Int64,
        TabularValueType.UInt64 => NumberDataViewType.UInt64,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "Unknown value type."),
    };

    /// <summary>A reader of a numeric column's current value as double (NaN stays NaN).</summary>
    public static Func<double> NumberReader(DataViewRow row, DataViewSchema.Column column, TabularValueType t)
    {
        switch (t)
        {
            case TabularValueType.Single: { var g = row.GetGetter<float>(column); float v = 0; return () => { g(ref v); return v; }; }
            case TabularValueType.Double: { var g = row.GetGetter<double>(column); double v = 0; return () => { g(ref v); return v; }; }
            case TabularValueType.SByte: { var g = row.GetGetter<sbyte>(column); sbyte v = 0; return () => { g(ref v); return v; }; }
            case TabularValueType.Byte: { var g = row.GetGetter<byte>(column); byte v = 0; return () => { g(ref v); return v; }; }
            case TabularValueType.Int16: { var g = row.GetGetter<short>(column); short v = 0; return () => { g(ref v); return v; }; }
            case TabularValueType.UInt16: { var g = row.GetGetter<ushort>(column); ushort v = 0; return () => { g(ref v); return v; }; }
            case TabularValueType.Int32: { var g = row.GetGetter<int>(column); int v = 0; return () => { g(ref v); return v; }; }
            case TabularValueType.UInt32: { var g = row.GetGetter<uint>(column); uint v = 0; return () => { g(ref v); return v; }; }
            case TabularValueType.Int64: { var g = row.GetGetter<long>(column); long v = 0; return () => { g(ref v); return v; }; }
            case TabularValueType.UInt64: { var g = row.GetGetter<ulong>(column); ulong v = 0; return () => { g(ref v); return v; }; }
            default: throw new ArgumentOutOfRangeException(nameof(t), t, "Not a numeric type.");
        }
    }

    /// <summary>A reader of a categorical column's current value as its level name (keys: their key value's text,
    /// or the key number when the column has no key values; 0, the missing key, reads as the empty string).</summary>
    public static Func<string> LevelReader(DataViewRow row, DataViewSchema.Column column, TabularValueType t, IReadOnlyList<string>? keyNames)
    {
        switch (t)
        {
            case TabularValueType.Text: { var g = row.GetGetter<ReadOnlyMemory<char>>(column); ReadOnlyMemory<char> v = default; return () => { g(ref v); return v.ToString(); }; }
            case TabularValueType.Boolean: { var g = row.GetGetter<bool>(column); bool v = false; return () => { g(ref v); return v ? "True" : "False"; }; }
            case TabularValueType.Key:
                {
                    var g = row.GetGetter<uint>(column); uint v = 0;
                    return () => { g(ref v); return v == 0 ? "" : keyNames is not null && v <= keyNames.Count ? keyNames[(int)v - 1] : v.ToString(System.Globalization.CultureInfo.InvariantCulture); };
                }
            default: throw new ArgumentOutOfRangeException(nameof(t), t, "Not a categorical type.");
        }
    }

    /// <summary>The key values of a key column as text, when it has them.</summary>
    public static string[]? KeyNames(DataViewSchema.Column column)
    {
        if (column.Type is not KeyDataViewType) return null;
        var annotation = column.Annotations.Schema.GetColumnOrNull(AnnotationUtils.Kinds.KeyValues);
        if (annotation is not { } a || a.Type is not VectorDataViewType { ItemType: TextDataViewType }) return null;
        VBuffer<ReadOnlyMemory<char>> values = default;
        column.Annotations.GetValue(AnnotationUtils.Kinds.KeyValues, ref values);
        return values.DenseValues().Select(v => v.ToString()).ToArray();
    }
}
