using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows;

/// <summary>
/// Assembles a custom stack of transforms on a base distribution, in sampling order (base → target).
/// Random choices (initial weights, random masks and permutations) come from one generator seeded once,
/// so the same calls with the same seed build the same flow.
/// <code>
/// var q = new FlowBuilder(10, seed: 1).WithBase(new StudentT(10))
///     .SplineCoupling().LULinear().SplineCoupling().ActNorm().Build();
/// </code>
/// </summary>
public sealed class FlowBuilder
{
    private readonly List<FlowTransform> steps = new();
    private BaseDistribution? baseDistribution;
    private int couplings;

    public FlowBuilder(int dimension, long seed = 0)
    {
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The dimension must be positive.");
        Dimension = dimension;
        Generator = new Generator((ulong)seed);
    }

    public int Dimension { get; }

    /// <summary>The generator every random initialization draws from.</summary>
    public Generator Generator { get; }

    /// <summary>The base distribution (default N(0, I)).</summary>
    public FlowBuilder WithBase(BaseDistribution distribution)
    {
        ArgumentNullException.ThrowIfNull(distribution);
        if (distribution.Dimension != Dimension)
            throw new ArgumentException($"The base has dimension {distribution.Dimension}, expected {Dimension}.", nameof(distribution));
        baseDistribution = distribution;
        return this;
    }

    /// <summary>Appends any transform.</summary>
    public FlowBuilder Add(FlowTransform transform)
    {
        ArgumentNullException.ThrowIfNull(transform);
        if (transform.Dimension != Dimension)
            throw new ArgumentException($"The transform has dimension {transform.Dimension}, expected {Dimension}.", nameof(transform));
        steps.Add(transform);
        return this;
    }

    /// <summary>RealNVP affine coupling. <paramref name="mask"/> null: halves, alternating with each coupling added.</summary>
    public FlowBuilder AffineCoupling(bool[]? mask = null, int hiddenWidth = 64, int residualBlocks = 1, double logScaleClamp = 3.0, bool identityInit = true) =>
        Add(new CouplingTransform(Dimension, mask ?? NextMask(), new AffineMap(logScaleClamp), hiddenWidth, residualBlocks, identityInit, Generator));

    /// <summary>Rational-quadratic spline coupling (NSF). <paramref name="mask"/> null: alternating halves.</summary>
    public FlowBuilder SplineCoupling(bool[]? mask = null, int bins = 8, double bound = 5.0, int hiddenWidth = 64, int residualBlocks = 1, bool identityInit = true) =>
        Add(new CouplingTransform(Dimension, mask ?? NextMask(), new RationalQuadraticSplineMap(bins, bound), hiddenWidth, residualBlocks, identityInit, Generator));

    /// <summary>A random coupling mask drawn from this builder's generator.</summary>
    public bool[] RandomMask() => CouplingMasks.Random(Dimension, Generator);

    /// <summary>Affine IAF layer (one-pass sampling: the VI direction).</summary>
    public FlowBuilder Iaf(int hiddenWidth = 64, int residualBlocks = 1, double logScaleClamp = 3.0, bool identityInit = true) =>
        Add(new MaskedAutoregressiveTransform(Dimension, new AffineMap(logScaleClamp), AutoregressiveDirection.Inverse, hiddenWidth, residualBlocks, identityInit, Generator));

    /// <summary>Affine MAF layer (one-pass density: the density-estimation direction).</summary>
    public FlowBuilder Maf(int hiddenWidth = 64, int residualBlocks = 1, double logScaleClamp = 3.0, bool identityInit = true) =>
        Add(new MaskedAutoregressiveTransform(Dimension, new AffineMap(logScaleClamp), AutoregressiveDirection.Masked, hiddenWidth, residualBlocks, identityInit, Generator));

    /// <summary>Autoregressive rational-quadratic spline layer (NSF-AR), IAF direction by default.</summary>
    public FlowBuilder SplineAutoregressive(AutoregressiveDirection direction = AutoregressiveDirection.Inverse, int bins = 8, double bound = 5.0,
        int hiddenWidth = 64, int residualBlocks = 1, bool identityInit = true) =>
        Add(new MaskedAutoregressiveTransform(Dimension, new RationalQuadraticSplineMap(bins, bound), direction, hiddenWidth, residualBlocks, identityInit, Generator));

    public FlowBuilder ReversePermutation() => Add(PermutationTransform.Reverse(Dimension));

    public FlowBuilder RandomPermutation() => Add(PermutationTransform.Random(Dimension, Generator));

    /// <summary>Learnable LU-parameterized linear layer (starts as a random permutation).</summary>
    public FlowBuilder LULinear() => Add(new LUInvertibleLinear(Dimension, Generator));

    public FlowBuilder ActNorm() => Add(new ActNorm(Dimension));

    public FlowBuilder Planar(int layers) => Add(new PlanarFlow(Dimension, layers, generator: Generator));

    public FlowBuilder Radial(int layers) => Add(new RadialFlow(Dimension, layers, generator: Generator));

    /// <summary>The flow: base (default N(0, I)) pushed through the steps in the order added.</summary>
    public FlowDistribution Build()
    {
        var b = baseDistribution ?? new StandardNormal(Dimension);
        FlowTransform? transform = steps.Count switch
        {
            0 => null,
            1 => steps[0],
            _ => new CompositeTransform(Dimension, steps),
        };
        return new FlowDistribution(b, transform);
    }

    private bool[] NextMask() => CouplingMasks.Halves(Dimension, flip: couplings++ % 2 == 1);
}
