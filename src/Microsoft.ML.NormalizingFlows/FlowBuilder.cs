using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows;

/// <summary>
/// Assembles a custom stack of transforms on a base distribution, in sampling order (base → target).
/// Random choices (initial weights, random masks and permutations) come from one generator seeded once,
/// so the same calls with the same seed build the same flow. The builder records its calls as
/// <see cref="FlowStep"/>s in the built flow's <see cref="FlowSpec"/>, so the flow can be saved
/// (<see cref="Persistence.FlowSerializer"/>) and rebuilt, unless a step or base came from outside the
/// builder's vocabulary (<see cref="Add"/> of an arbitrary transform, a base other than N(0, I),
/// <see cref="DiagonalNormal"/> or <see cref="StudentT"/>): such a flow trains and samples but has no spec.
/// <code>
/// var q = new FlowBuilder(10, seed: 1).WithBase(new StudentT(10))
///     .SplineCoupling().LULinear().SplineCoupling().ActNorm().Build();
/// </code>
/// </summary>
public sealed partial class FlowBuilder
{
    /// <summary>The <see cref="FlowSpec.Preset"/> of a flow built by a builder.</summary>
    public const string CustomPreset = "custom";

    private readonly List<FlowTransform> steps = new();
    private BaseDistribution? baseDistribution;
    private int couplings;
    private readonly long seed;
    // The calls so far, or null once one cannot be written down (the flow then has no spec).
    private List<FlowStep>? recipe = new();
    private Dictionary<string, string>? baseSettings;

    public FlowBuilder(int dimension, long seed = 0)
    {
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The dimension must be positive.");
        Dimension = dimension;
        this.seed = seed;
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
        baseSettings = PresetSettings.Describe(distribution);
        return this;
    }

    /// <summary>Appends any transform (a transform from outside the builder's methods leaves the flow without a spec).</summary>
    public FlowBuilder Add(FlowTransform transform) => Append(transform, null);

    private FlowBuilder Append(FlowTransform transform, FlowStep? step)
    {
        ArgumentNullException.ThrowIfNull(transform);
        if (transform.Dimension != Dimension)
            throw new ArgumentException($"The transform has dimension {transform.Dimension}, expected {Dimension}.", nameof(transform));
        steps.Add(transform);
        if (step is null) recipe = null;
        else recipe?.Add(step);
        return this;
    }

    /// <summary>RealNVP affine coupling. <paramref name="mask"/> null: halves, alternating with each coupling added.</summary>
    public FlowBuilder AffineCoupling(bool[]? mask = null, int hiddenWidth = 64, int residualBlocks = 1, double logScaleClamp = 3.0, bool identityInit = true)
    {
        var m = mask ?? NextMask();
        return Append(new CouplingTransform(Dimension, m, new AffineMap(logScaleClamp), hiddenWidth, residualBlocks, identityInit, Generator),
            Step("affine-coupling", ("mask", MaskText(m)), ("hidden", Text(hiddenWidth)), ("blocks", Text(residualBlocks)), ("clamp", Text(logScaleClamp)), ("identity-init", Text(identityInit))));
    }

    /// <summary>Rational-quadratic spline coupling (NSF). <paramref name="mask"/> null: alternating halves.</summary>
    public FlowBuilder SplineCoupling(bool[]? mask = null, int bins = 8, double bound = 5.0, int hiddenWidth = 64, int residualBlocks = 1, bool identityInit = true)
    {
        var m = mask ?? NextMask();
        return Append(new CouplingTransform(Dimension, m, new RationalQuadraticSplineMap(bins, bound), hiddenWidth, residualBlocks, identityInit, Generator),
            Step("spline-coupling", ("mask", MaskText(m)), ("bins", Text(bins)), ("bound", Text(bound)), ("hidden", Text(hiddenWidth)), ("blocks", Text(residualBlocks)), ("identity-init", Text(identityInit))));
    }

    /// <summary>A random coupling mask drawn from this builder's generator.</summary>
    public bool[] RandomMask() => CouplingMasks.Random(Dimension, Generator);

    /// <summary>Affine IAF layer (one-pass sampling: the VI direction).</summary>
    public FlowBuilder Iaf(int hiddenWidth = 64, int residualBlocks = 1, double logScaleClamp = 3.0, bool identityInit = true) =>
        Append(new MaskedAutoregressiveTransform(Dimension, new AffineMap(logScaleClamp), AutoregressiveDirection.Inverse, hiddenWidth, residualBlocks, identityInit, Generator),
            Step("iaf", ("hidden", Text(hiddenWidth)), ("blocks", Text(residualBlocks)), ("clamp", Text(logScaleClamp)), ("identity-init", Text(identityInit))));

    /// <summary>Affine MAF layer (one-pass density: the density-estimation direction).</summary>
    public FlowBuilder Maf(int hiddenWidth = 64, int residualBlocks = 1, double logScaleClamp = 3.0, bool identityInit = true) =>
        Append(new MaskedAutoregressiveTransform(Dimension, new AffineMap(logScaleClamp), AutoregressiveDirection.Masked, hiddenWidth, residualBlocks, identityInit, Generator),
            Step("maf", ("hidden", Text(hiddenWidth)), ("blocks", Text(residualBlocks)), ("clamp", Text(logScaleClamp)), ("identity-init", Text(identityInit))));

    /// <summary>Autoregressive rational-quadratic spline layer (NSF-AR), IAF direction by default.</summary>
    public FlowBuilder SplineAutoregressive(AutoregressiveDirection direction = AutoregressiveDirection.Inverse, int bins = 8, double bound = 5.0,
        int hiddenWidth = 64, int residualBlocks = 1, bool identityInit = true) =>
        Append(new MaskedAutoregressiveTransform(Dimension, new RationalQuadraticSplineMap(bins, bound), direction, hiddenWidth, residualBlocks, identityInit, Generator),
            Step("spline-autoregressive", ("direction", direction == AutoregressiveDirection.Masked ? "maf" : "iaf"), ("bins", Text(bins)), ("bound", Text(bound)),
                ("hidden", Text(hiddenWidth)), ("blocks", Text(residualBlocks)), ("identity-init", Text(identityInit))));

    public FlowBuilder ReversePermutation() => Append(PermutationTransform.Reverse(Dimension), Step("reverse-permutation"));

    /// <summary>A permutation drawn from the builder's generator (a buffer: saved with the weights).</summary>
    public FlowBuilder RandomPermutation() => Append(PermutationTransform.Random(Dimension, Generator), Step("random-permutation"));

    /// <summary>Learnable LU-parameterized linear layer (starts as a random permutation).</summary>
    public FlowBuilder LULinear() => Append(new LUInvertibleLinear(Dimension, Generator), Step("lu-linear"));

    public FlowBuilder ActNorm() => Append(new ActNorm(Dimension), Step("actnorm"));

    public FlowBuilder Planar(int layers) => Append(new PlanarFlow(Dimension, layers, generator: Generator), Step("planar", ("layers", Text(layers))));

    public FlowBuilder Radial(int layers) => Append(new RadialFlow(Dimension, layers, generator: Generator), Step("radial", ("layers", Text(layers))));

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
        var flow = new FlowDistribution(b, transform);
        if (recipe is not null && (baseDistribution is null || baseSettings is not null))
            flow.Spec = new FlowSpec(CustomPreset, Dimension, recipe.Count, seed, baseSettings is { Count: > 0 } ? new Dictionary<string, string>(baseSettings) : null, recipe.ToArray());
        return flow;
    }

    private bool[] NextMask() => CouplingMasks.Halves(Dimension, flip: couplings++ % 2 == 1);
}
