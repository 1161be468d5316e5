namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>
/// How one table column maps to the unit line, where the flow works on its normal score z = Φ⁻¹(u).
/// A value encodes to an interval [Lo, Hi] of u (a point when Lo = Hi): continuous values are points,
/// integers, tied values, categories and "missing" are intervals as wide as their share of the rows, which
/// training fills uniformly (dequantization). Because every column's encoded u is uniform on (0, 1) under the
/// data, the flow's base marginals already match and it only has to learn the dependence between columns.
/// </summary>
public abstract class ColumnEncoding
{
    private protected ColumnEncoding(string name, TabularValueType valueType, ulong keyCount)
    {
        Name = name;
        ValueType = valueType;
        KeyCount = keyCount;
    }

    /// <summary>The column's name in the table.</summary>
    public string Name { get; }
    /// <summary>The column's type in the table (generated rows have it too).</summary>
    public TabularValueType ValueType { get; }
    /// <summary>Key columns: the key count (0 otherwise).</summary>
    public ulong KeyCount { get; }
    /// <summary>How the column is modelled.</summary>
    public abstract TabularColumnKind Kind { get; }

    /// <summary>A one-line description (kind, range or levels) for reports and docs.</summary>
    public abstract string Describe();

    internal abstract void Write(BinaryWriter writer);

    internal static ColumnEncoding Read(BinaryReader reader)
    {
        byte tag = reader.ReadByte();
        string name = reader.ReadString();
        var valueType = (TabularValueType)reader.ReadInt32();
        ulong keyCount = reader.ReadUInt64();
        if (!Enum.IsDefined(valueType)) throw new InvalidDataException($"Corrupt table-flow model: column '{name}' has unknown value type {(int)valueType}.");
        return tag switch
        {
            NumericEncoding.Tag => NumericEncoding.ReadBody(reader, name, valueType, keyCount),
            CategoryEncoding.Tag => CategoryEncoding.ReadBody(reader, name, valueType, keyCount),
            _ => throw new InvalidDataException($"Corrupt table-flow model: column '{name}' has unknown encoding tag {tag}."),
        };
    }

    private protected void WriteHeader(BinaryWriter writer, byte tag)
    {
        writer.Write(tag);
        writer.Write(Name);
        writer.Write((int)ValueType);
        writer.Write(KeyCount);
    }
}

/// <summary>An encoded value: the interval [Lo, Hi] of u, and LogJacobian = log(Hi − Lo) for an interval (its
/// probability mass) or log du/dx for a point (a density), so log p(row) = log q(z) + Σ (LogJacobian − log φ(z)).
/// NaN bounds mark a value the encoding has never seen (an unknown level).</summary>
public readonly record struct EncodedValue(double Lo, double Hi, double LogJacobian)
{
    public static EncodedValue Unknown { get; } = new(double.NaN, double.NaN, double.NegativeInfinity);
}
