using Microsoft.ML.NormalizingFlows.Modeling.Constraints;

namespace Microsoft.ML.NormalizingFlows.Modeling;

/// <summary>A declared parameter: its name, shape, constraint, and where its coordinates sit in the unconstrained vector.</summary>
public sealed class ModelParameter
{
    internal ModelParameter(string name, long[] shape, Constraint constraint, int offset)
    {
        Name = name;
        Shape = shape;
        Constraint = constraint;
        Bijector = constraint.BijectorFor(shape.Length == 0 ? new long[] { 1 } : shape);
        Offset = offset;
    }

    public string Name { get; }

    /// <summary>The shape of one value: empty for a scalar.</summary>
    public long[] Shape { get; }

    public Constraint Constraint { get; }

    /// <summary>Maps this parameter's unconstrained coordinates to its values (and gives log |det J|).</summary>
    public Bijector Bijector { get; }

    /// <summary>Where its coordinates start in the model's unconstrained vector.</summary>
    public int Offset { get; }

    /// <summary>How many unconstrained coordinates it takes.</summary>
    public int UnconstrainedSize => Bijector.UnconstrainedSize;

    /// <summary>Entries of one value (1 for a scalar).</summary>
    public long ValueSize => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>The names of its entries, Stan style: mu; theta[1] … theta[8]; L[1,1] … (1-based, row-major).</summary>
    public IEnumerable<string> EntryNames()
    {
        if (Shape.Length == 0) { yield return Name; yield break; }
        var index = new long[Shape.Length];
        for (long n = 0; n < ValueSize; n++)
        {
            yield return $"{Name}[{string.Join(",", index.Select(i => i + 1))}]";
            for (int d = Shape.Length - 1; d >= 0; d--)
            {
                if (++index[d] < Shape[d]) break;
                index[d] = 0;
            }
        }
    }

    public override string ToString() => $"{Name}{(Shape.Length == 0 ? "" : $"[{string.Join(", ", Shape)}]")}: {Constraint}";
}
