using System.Globalization;

namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>Turns decoded numbers or level names into arrays of a column's own CLR type (what getters hand out).</summary>
internal static class TypedColumns
{
    public static Array FromNumbers(TabularValueType type, double[] values) => type switch
    {
        TabularValueType.Single => values.Select(v => (float)v).ToArray(),
        TabularValueType.Double => values,
        TabularValueType.SByte => values.Select(v => (sbyte)Saturate(v, sbyte.MinValue, sbyte.MaxValue)).ToArray(),
        TabularValueType.Byte => values.Select(v => (byte)Saturate(v, byte.MinValue, byte.MaxValue)).ToArray(),
        TabularValueType.Int16 => values.Select(v => (short)Saturate(v, short.MinValue, short.MaxValue)).ToArray(),
        TabularValueType.UInt16 => values.Select(v => (ushort)Saturate(v, ushort.MinValue, ushort.MaxValue)).ToArray(),
        TabularValueType.Int32 => values.Select(v => (int)Saturate(v, int.MinValue, int.MaxValue)).ToArray(),
        TabularValueType.UInt32 => values.Select(v => (uint)Saturate(v, uint.MinValue, uint.MaxValue)).ToArray(),
        TabularValueType.Int64 => values.Select(v => (long)Saturate(v, long.MinValue, long.MaxValue)).ToArray(),
        TabularValueType.UInt64 => values.Select(v => (ulong)Saturate(v, 0, ulong.MaxValue)).ToArray(),
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Not a numeric type."),
    };

    /// <summary>Level names to the column's type: text as is, Booleans from "True"/"False", keys by their key value
    /// (position in <paramref name="keyNames"/> + 1, or the number itself), numbers parsed invariantly.</summary>
    public static Array FromLevels(TabularValueType type, string[] levels, IReadOnlyList<string>? keyNames)
    {
        switch (type)
        {
            case TabularValueType.Text: return levels.Select(l => l.AsMemory()).ToArray();
            case TabularValueType.Boolean: return levels.Select(l => l == "True").ToArray();
            case TabularValueType.Key:
                var position = keyNames?.Select((n, i) => (n, i)).GroupBy(p => p.n).ToDictionary(g => g.Key, g => g.First().i + 1);
                return levels.Select(l => l.Length == 0 ? 0u
                    : position is not null && position.TryGetValue(l, out int k) ? (uint)k
                    : uint.Parse(l, CultureInfo.InvariantCulture)).ToArray();
            default:
                return FromNumbers(type, levels.Select(l => l.Length == 0 ? double.NaN : double.Parse(l, CultureInfo.InvariantCulture)).ToArray());
        }
    }

    private static double Saturate(double v, double min, double max) => double.IsNaN(v) ? 0 : Math.Clamp(Math.Round(v), min, max);
}
