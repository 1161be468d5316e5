using System.Globalization;

namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>One column of a table read into memory: numbers (NaN = missing) or level names.</summary>
internal sealed class TableColumn
{
    public TableColumn(string name, TabularValueType type, ulong keyCount, string[]? keyNames, double[]? numbers, string[]? levels)
    {
        Name = name; Type = type; KeyCount = keyCount; KeyNames = keyNames; Numbers = numbers; Levels = levels;
    }

    public string Name { get; }
    public TabularValueType Type { get; }
    public ulong KeyCount { get; }
    public string[]? KeyNames { get; }
    public double[]? Numbers { get; }
    public string[]? Levels { get; }
    public int Count => Numbers?.Length ?? Levels!.Length;

    /// <summary>The values as level names (numbers printed invariantly, missing as the empty string).</summary>
    public string[] AsLevels() => Levels ?? Numbers!.Select(v => double.IsNaN(v) ? "" : v.ToString("R", CultureInfo.InvariantCulture)).ToArray();

    /// <summary>Reads the named columns of <paramref name="data"/> in one pass: numeric types as numbers, the rest as levels.</summary>
    public static TableColumn[] Read(IDataView data, IReadOnlyList<string> names, string argumentName)
    {
        var columns = names.Select(n => data.Schema.GetColumnOrNull(n)
            ?? throw new ArgumentException($"The data have no column '{n}'. Columns: {string.Join(", ", data.Schema.Select(c => c.Name))}.", argumentName)).ToArray();
        var types = columns.Select(TabularValueTypes.Of).ToArray();
        var keyNames = columns.Select(TabularValueTypes.KeyNames).ToArray();
        var numbers = new List<double>[columns.Length];
        var levels = new List<string>[columns.Length];
        using var cursor = data.GetRowCursor(columns);
        var numberReaders = new Func<double>?[columns.Length];
        var levelReaders = new Func<string>?[columns.Length];
        for (int j = 0; j < columns.Length; j++)
        {
            if (TabularValueTypes.IsNumeric(types[j].Type)) { numbers[j] = new(); numberReaders[j] = TabularValueTypes.NumberReader(cursor, columns[j], types[j].Type); }
            else { levels[j] = new(); levelReaders[j] = TabularValueTypes.LevelReader(cursor, columns[j], types[j].Type, keyNames[j]); }
        }
        while (cursor.MoveNext())
            for (int j = 0; j < columns.Length; j++)
                if (numberReaders[j] is { } n) numbers[j].Add(n()); else levels[j].Add(levelReaders[j]!());
        return columns.Select((c, j) => new TableColumn(c.Name, types[j].Type, types[j].KeyCount, keyNames[j], numbers[j]?.ToArray(), levels[j]?.ToArray())).ToArray();
    }
}
