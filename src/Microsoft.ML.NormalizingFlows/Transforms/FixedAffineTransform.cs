using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>
/// y = loc + scale ⊙ x with fixed (non-trainable) loc and scale &gt; 0. Density estimation puts it last so the
/// trainable flow works on standardized data (its base is N(0, I)), which makes fits to data on any scale behave
/// like fits on unit-scale data; a posterior fit puts it first to precondition. The computation uses the exact
/// double values in the input's dtype (a float64 fit is not rounded through float32); the buffers travel with
/// the state dict for saved flows.
/// </summary>
public sealed class FixedAffineTransform : FlowTransform
{
    private readonly Tensor loc;
    private readonly Tensor scale;
    private readonly Tensor logScaleSum;

    public FixedAffineTransform(double[] location, double[] scale) : base(nameof(FixedAffineTransform), location?.Length ?? 0)
    {
        ArgumentNullException.ThrowIfNull(location);
        ArgumentNullException.ThrowIfNull(scale);
        if (scale.Length != location.Length)
            throw new ArgumentException($"scale has {scale.Length} entries but location has {location.Length}.", nameof(scale));
        for (int i = 0; i < scale.Length; i++)
        {
            if (!double.IsFinite(location[i])) throw new ArgumentOutOfRangeException(nameof(location), location[i], $"location[{i}] must be finite.");
            if (!(scale[i] > 0) || !double.IsFinite(scale[i])) throw new ArgumentOutOfRangeException(nameof(scale), scale[i], $"scale[{i}] must be positive and finite.");
        }
        Location = (double[])location.Clone();
        Scale = (double[])scale.Clone();
        loc = torch.tensor(location, dtype: ScalarType.Float32);
        this.scale = torch.tensor(scale, dtype: ScalarType.Float32);
        logScaleSum = torch.tensor(scale.Sum(Math.Log), dtype: ScalarType.Float32);
        register_buffer("loc", loc);
        register_buffer("scale", this.scale);
        register_buffer("logScaleSum", logScaleSum);
        exactLoc = new CachedConstant(location);
        exactScale = new CachedConstant(scale);
        exactLogScaleSum = new CachedConstant(new[] { scale.Sum(Math.Log) });
    }

    private readonly CachedConstant exactLoc, exactScale, exactLogScaleSum;

    /// <summary>The location and scale it was built with (double precision; persistence records these).</summary>
    public IReadOnlyList<double> Location { get; }
    public IReadOnlyList<double> Scale { get; }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        var (l, s, ld) = Exact(input);
        return (torch.addcmul(l, input, s, S(1)), ld.expand(input.shape[0]).clone());
    }

    public override bool HasInverse => true;

    public override (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input)
    {
        CheckInput(input);
        var (l, s, ld) = Exact(input);
        return ((input - l) / s, ld.neg().expand(input.shape[0]).clone());
    }

    // The exact values in the input's dtype and on its device (the buffers follow .to() through float32 and lose digits).
    private (Tensor Loc, Tensor Scale, Tensor LogScaleSum) Exact(Tensor input) =>
        (exactLoc.Like(input), exactScale.Like(input), exactLogScaleSum.Like(input));
}
