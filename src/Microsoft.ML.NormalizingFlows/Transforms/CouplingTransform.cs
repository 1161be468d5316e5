using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>How a coupling layer splits the coordinates into the conditioning (kept) part and the transformed part.</summary>
public static class CouplingMasks
{
    /// <summary>Halves: the first ⌈d/2⌉ coordinates kept when <paramref name="flip"/> is false, the rest otherwise.
    /// Alternate <paramref name="flip"/> between layers so every coordinate gets transformed.</summary>
    public static bool[] Halves(int dimension, bool flip)
    {
        RequireAtLeastTwo(dimension);
        int half = (dimension + 1) / 2;
        return Enumerable.Range(0, dimension).Select(i => (i < half) != flip).ToArray();
    }

    /// <summary>A random split with ⌊d/2⌋ kept coordinates (at least one kept, one transformed).</summary>
    public static bool[] Random(int dimension, Generator? generator)
    {
        RequireAtLeastTwo(dimension);
        var order = torch.randperm(dimension, generator: generator).data<long>().ToArray();
        var mask = new bool[dimension];
        for (int i = 0; i < dimension / 2; i++) mask[order[i]] = true;
        return mask;
    }

    internal static void RequireAtLeastTwo(int dimension)
    {
        if (dimension < 2)
            throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "A coupling layer needs d ≥ 2 (one part conditions the other).");
    }
}

/// <summary>
/// A coupling layer (Dinh et al. 2017, RealNVP; Durkan et al. 2019 for splines): coordinates with
/// mask = true pass through unchanged and feed a residual conditioner network whose output
/// parameterizes a monotone elementwise map of the other coordinates. The Jacobian is triangular, so
/// log|det J| = Σ over transformed coordinates of log g′, and the inverse costs one network pass too.
/// Needs d ≥ 2.
/// </summary>
public sealed class CouplingTransform : FlowTransform
{
    private readonly ResidualNetwork conditioner;
    private readonly Tensor keep;        // [d] 1 = conditioning (kept), 0 = transformed; a buffer (follows dtype/device)
    private readonly ElementwiseMap map;

    /// <param name="dimension">d ≥ 2.</param>
    /// <param name="mask">true = kept and conditioning; needs at least one true and one false.</param>
    /// <param name="map">The elementwise map: <see cref="AffineMap"/> (RealNVP) or <see cref="RationalQuadraticSplineMap"/> (NSF).</param>
    /// <param name="hiddenWidth">Width of the conditioner.</param>
    /// <param name="residualBlocks">Residual blocks in the conditioner (each two layers).</param>
    /// <param name="identityInit">Zero the conditioner's last layer so the layer starts as the identity.</param>
    /// <param name="generator">Draws the conditioner's initial weights (null: TorchSharp's global generator).</param>
    public CouplingTransform(int dimension, bool[] mask, ElementwiseMap map, int hiddenWidth = 64, int residualBlocks = 1,
        bool identityInit = true, Generator? generator = null) : base(nameof(CouplingTransform), dimension)
    {
        CouplingMasks.RequireAtLeastTwo(dimension);
        ArgumentNullException.ThrowIfNull(mask);
        this.map = map ?? throw new ArgumentNullException(nameof(map));
        if (mask.Length != dimension) throw new ArgumentException($"The mask has length {mask.Length}, expected {dimension}.", nameof(mask));
        if (mask.All(m => m) || mask.All(m => !m)) throw new ArgumentException("The mask must keep at least one coordinate and transform at least one.", nameof(mask));
        Mask = (bool[])mask.Clone();
        keep = torch.tensor(mask.Select(m => m ? 1f : 0f).ToArray());
        register_buffer("keep", keep);
        conditioner = ResidualNetwork.Dense(dimension, dimension * map.ParametersPerDimension, hiddenWidth, residualBlocks, identityInit, generator);
        RegisterComponents();
    }

    /// <summary>true = kept (conditioning) coordinate.</summary>
    public IReadOnlyList<bool> Mask { get; }

    public ElementwiseMap Map => map;

    public override bool HasInverse => true;

    private Tensor Parameters(Tensor kept) => conditioner.call(kept).view(kept.shape[0], Dimension, map.ParametersPerDimension);

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        return Apply(input, inverse: false);
    }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input)
    {
        CheckInput(input);
        return Apply(input, inverse: true);
    }

    private (Tensor, Tensor) Apply(Tensor input, bool inverse)
    {
        var kept = input * keep;
        var p = Parameters(kept);
        var (mapped, logDerivative) = inverse ? map.Inverse(input, p) : map.Forward(input, p);
        var transformed = 1 - keep;
        // kept coordinates pass through; the rest take the mapped values.
        var output = torch.addcmul(kept, mapped, transformed, 1);
        return (output, (logDerivative * transformed).sum(1));
    }
}
