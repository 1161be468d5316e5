using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Targets;

/// <summary>
/// An unnormalized log density log p̃(z) over R^d, written with TorchSharp tensor operations so that
/// gradients flow through it: points [B, d] → log p̃ [B].
/// </summary>
public abstract class Target
{
    protected Target(string name, int dimension)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("A target needs a name.", nameof(name));
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The dimension of a target must be positive.");
        Name = name;
        Dimension = dimension;
    }

    public string Name { get; }
    public int Dimension { get; }

    /// <summary>½ log 2π, the per-coordinate constant of a normal log density.</summary>
    protected static readonly double HalfLogTwoPi = 0.5 * Math.Log(2 * Math.PI);

    /// <summary>log p̃(z) for z [B, d] → [B]. Must be differentiable with torch operations.</summary>
    public abstract Tensor LogDensity(Tensor z);

    /// <summary>
    /// The exact log normalizer log Z = log ∫ p̃, when known (for the 2-D gallery, by quadrature);
    /// null when unknown or when the density is improper. With it, KL(q‖p) = E_q[log q − log p̃] + log Z.
    /// </summary>
    public virtual double? LogNormalizer => null;

    /// <summary>True when ∫ p̃ is finite over R^d (false for the seeds' U2–U4, which do not decay in z1).</summary>
    public virtual bool IsProper => true;

    /// <summary>Names of the d coordinates (e.g. a posterior's parameters), or null; they label the Sample column's slots.</summary>
    public virtual IReadOnlyList<string>? CoordinateNames => null;

    /// <summary>A box that holds essentially all of the mass (2-D targets: for quadrature and pictures).</summary>
    public virtual Box? Support => null;

    /// <summary>
    /// Evaluates <see cref="LogDensity"/> and checks the result's shape, naming this target in any error:
    /// a user's delegate that returns [B, 1] or [B, d] is caught here, not deep inside training.
    /// </summary>
    public Tensor Evaluate(Tensor z)
    {
        if (z.dim() != 2 || z.shape[1] != Dimension)
            throw new ArgumentException($"Target '{Name}' has dimension {Dimension} but was given points of shape [{string.Join(", ", z.shape)}].", nameof(z));
        Tensor result;
        try
        {
            result = LogDensity(z);
        }
        catch (Exception e) when (e is not TargetException)
        {
            throw new TargetException($"Target '{Name}' threw {e.GetType().Name} while evaluating its log density: {FirstLine(e.Message)}", e);
        }
        if (result is null)
            throw new TargetException($"Target '{Name}' returned null instead of a log-density tensor of shape [{z.shape[0]}].");
        if (result.dim() != 1 || result.shape[0] != z.shape[0])
            throw new TargetException(
                $"Target '{Name}' returned a log density of shape [{string.Join(", ", result.shape)}]; expected [{z.shape[0]}] (one value per point of a [{z.shape[0]}, {Dimension}] batch).");
        return result;
    }

    /// <summary>
    /// The first line of an error message. libtorch's errors carry the whole C++ backtrace ("Exception raised
    /// from … frame #0 …") after it; the full text stays in the inner exception.
    /// </summary>
    internal static string FirstLine(string message)
    {
        var line = message.AsSpan();
        int end = line.IndexOfAny('\r', '\n');
        if (end >= 0) line = line[..end];
        int backtrace = line.IndexOf("Exception raised from", StringComparison.Ordinal);
        if (backtrace >= 0) line = line[..backtrace];
        return line.Trim().ToString();
    }

    /// <summary>Wraps a delegate as a target.</summary>
    public static Target FromDelegate(string name, int dimension, Func<Tensor, Tensor> logDensity, double? logNormalizer = null) =>
        new DelegateTarget(name, dimension, logDensity ?? throw new ArgumentNullException(nameof(logDensity)), logNormalizer);

    private sealed class DelegateTarget(string name, int dimension, Func<Tensor, Tensor> logDensity, double? logNormalizer)
        : Target(name, dimension)
    {
        public override Tensor LogDensity(Tensor z) => logDensity(z);
        public override double? LogNormalizer => logNormalizer;
    }
}

/// <summary>An axis-aligned rectangle [MinX, MaxX] × [MinY, MaxY].</summary>
public readonly record struct Box(double MinX, double MaxX, double MinY, double MaxY)
{
    public double Width => MaxX - MinX;
    public double Height => MaxY - MinY;
}

/// <summary>A target's log density misbehaved (threw, or returned the wrong shape).</summary>
public sealed class TargetException : Exception
{
    public TargetException(string message, Exception? inner = null) : base(message, inner) { }
}
