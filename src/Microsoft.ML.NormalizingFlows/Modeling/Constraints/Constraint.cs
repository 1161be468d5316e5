namespace Microsoft.ML.NormalizingFlows.Modeling.Constraints;

/// <summary>
/// Where a parameter lives, and the bijector from unconstrained space that a model uses for it (the registry
/// NumPyro calls biject_to). Create them through <see cref="Constraint"/>'s static members.
/// </summary>
public abstract class Constraint
{
    private protected Constraint(string name) => Name = name;

    /// <summary>A short description (e.g. "positive", "interval(0, 1)").</summary>
    public string Name { get; }

    public override string ToString() => Name;

    /// <summary>The bijector for a parameter of this shape; throws when the shape does not suit the constraint.</summary>
    public abstract Bijector BijectorFor(long[] shape);

    /// <summary>Any real value.</summary>
    public static Constraint Real { get; } = new Elementwise("real", shape => new IdentityBijector(shape));

    /// <summary>x &gt; 0 (exp).</summary>
    public static Constraint Positive { get; } = new Elementwise("positive", shape => new LowerBoundBijector(shape, 0));

    /// <summary>x &gt; lower.</summary>
    public static Constraint GreaterThan(double lower) => double.IsFinite(lower)
        ? new Elementwise($"greater than {lower}", shape => new LowerBoundBijector(shape, lower))
        : throw new ArgumentOutOfRangeException(nameof(lower), lower, "The bound must be finite.");

    /// <summary>x &lt; upper.</summary>
    public static Constraint LessThan(double upper) => double.IsFinite(upper)
        ? new Elementwise($"less than {upper}", shape => new UpperBoundBijector(shape, upper))
        : throw new ArgumentOutOfRangeException(nameof(upper), upper, "The bound must be finite.");

    /// <summary>lower &lt; x &lt; upper (scaled logistic).</summary>
    public static Constraint Interval(double lower, double upper)
    {
        _ = new IntervalBijector(new long[] { 1 }, lower, upper); // validates the bounds now, not at first use
        return new Elementwise($"interval({lower}, {upper})", shape => new IntervalBijector(shape, lower, upper));
    }

    /// <summary>0 &lt; x &lt; 1.</summary>
    public static Constraint UnitInterval { get; } = Interval(0, 1);

    /// <summary>A vector of K non-negative entries summing to 1 (stick-breaking); shape [K].</summary>
    public static Constraint Simplex { get; } = new Vector("simplex", k => new SimplexBijector(k));

    /// <summary>An increasing vector; shape [K].</summary>
    public static Constraint Ordered { get; } = new Vector("ordered", k => new OrderedBijector(k));

    /// <summary>A positive increasing vector; shape [K].</summary>
    public static Constraint PositiveOrdered { get; } = new Vector("positive ordered", k => new PositiveOrderedBijector(k));

    /// <summary>The Cholesky factor of a K×K correlation matrix (pair it with an LKJCholesky prior); shape [K, K].</summary>
    public static Constraint CorrelationCholesky { get; } = new Matrix("correlation Cholesky factor", k => new CorrelationCholeskyBijector(k));

    /// <summary>A lower-triangular matrix with positive diagonal (a covariance's Cholesky factor); shape [K, K].</summary>
    public static Constraint LowerCholesky { get; } = new Matrix("lower Cholesky factor", k => new LowerCholeskyBijector(k));

    private sealed class Elementwise(string name, Func<long[], Bijector> create) : Constraint(name)
    {
        public override Bijector BijectorFor(long[] shape) => create(shape ?? throw new ArgumentNullException(nameof(shape)));
    }

    private sealed class Vector(string name, Func<int, Bijector> create) : Constraint(name)
    {
        public override Bijector BijectorFor(long[] shape) => shape is { Length: 1 } && shape[0] >= 2
            ? create(checked((int)shape[0]))
            : throw new ArgumentException($"A {Name} parameter is a vector of at least 2 entries, shape [K]; got [{string.Join(", ", shape ?? Array.Empty<long>())}].", nameof(shape));
    }

    private sealed class Matrix(string name, Func<int, Bijector> create) : Constraint(name)
    {
        public override Bijector BijectorFor(long[] shape) => shape is { Length: 2 } && shape[0] == shape[1]
            ? create(checked((int)shape[0]))
            : throw new ArgumentException($"A {Name} is a square matrix, shape [K, K]; got [{string.Join(", ", shape ?? Array.Empty<long>())}].", nameof(shape));
    }
}
