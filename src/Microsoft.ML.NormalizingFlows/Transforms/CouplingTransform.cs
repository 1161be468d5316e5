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
/// The conditioner reads only the kept coordinates and emits parameters only for the transformed ones,
/// so neither the network nor the map spends work on coordinates that pass through. Needs d ≥ 2.
/// </summary>
public sealed class CouplingTransform : FlowTransform
{
    private readonly ResidualNetwork conditioner;
    private readonly CachedConstant keptIndex;         // int64 positions of the kept coordinates
    private readonly CachedConstant transformedIndex;  // and of the transformed ones
    private readonly int transformedCount;
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
        long[] kept = Enumerable.Range(0, dimension).Where(i => mask[i]).Select(i => (long)i).ToArray();
        long[] transformed = Enumerable.Range(0, dimension).Where(i => !mask[i]).Select(i => (long)i).ToArray();
        keptIndex = new CachedConstant(kept);
        transformedIndex = new CachedConstant(transformed);
        transformedCount = transformed.Length;
        conditioner = ResidualNetwork.Dense(kept.Length, transformedCount * map.ParametersPerDimension,
            hiddenWidth, residualBlocks, identityInit, generator);
        RegisterComponents();
    }

    /// <summary>true = kept (conditioning) coordinate.</summary>
    public IReadOnlyList<bool> Mask { get; }

    public ElementwiseMap Map => map;

    public override bool HasInverse => true;

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
        var transformedAt = transformedIndex.On(input.device);
        var kept = input.index_select(1, keptIndex.On(input.device));
        var x = input.index_select(1, transformedAt);
        var p = conditioner.call(kept).view(input.shape[0], transformedCount, map.ParametersPerDimension);
        var (mapped, logDerivative) = inverse ? map.Inverse(x, p) : map.Forward(x, p);
        // Kept coordinates pass through bit for bit; the transformed ones take the mapped values.
        return (input.index_copy(1, transformedAt, mapped), logDerivative.sum(1));
    }
}
