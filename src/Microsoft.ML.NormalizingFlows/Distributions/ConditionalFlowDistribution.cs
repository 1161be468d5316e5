using Microsoft.ML.NormalizingFlows.Transforms;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Distributions;

/// <summary>The architecture of a <see cref="ConditionalFlowDistribution"/>: enough to rebuild it before loading weights.</summary>
/// <param name="Layers">Coupling layers, each with its own random split of the coordinates.</param>
/// <param name="Hidden">Width of every conditioner.</param>
/// <param name="Blocks">Residual blocks per conditioner.</param>
/// <param name="Bins">Spline bins per coordinate (rational-quadratic spline maps).</param>
/// <param name="Bound">The spline interval [−B, B]; identity tails outside.</param>
public sealed record ConditionalFlowSettings(int Layers = 8, int Hidden = 128, int Blocks = 2, int Bins = 8, double Bound = 5.0)
{
    /// <summary>Throws a specific exception for a setting out of range.</summary>
    public void Validate()
    {
        if (Layers <= 0) throw new ArgumentOutOfRangeException(nameof(Layers), Layers, "A conditional flow needs at least one layer.");
        if (Hidden <= 0) throw new ArgumentOutOfRangeException(nameof(Hidden), Hidden, "The conditioner width must be positive.");
        if (Blocks < 0) throw new ArgumentOutOfRangeException(nameof(Blocks), Blocks, "The number of residual blocks must be ≥ 0.");
        if (Bins < 1 || Bins > 999) throw new ArgumentOutOfRangeException(nameof(Bins), Bins, "Spline bins must be 1 to 999.");
        if (!(Bound > 0) || double.IsInfinity(Bound)) throw new ArgumentOutOfRangeException(nameof(Bound), Bound, "The spline bound must be positive and finite.");
    }
}

/// <summary>
/// q(x | c): a standard normal pushed through rational-quadratic spline couplings whose conditioners read the
/// context c (Durkan et al. 2019's NSF with conditioning, as zuko and nflows build it). Each layer splits the
/// coordinates at random (seeded), so every coordinate is transformed and conditions the others across layers.
/// With context dimension 0 it is an ordinary coupling flow; with d = 1 each layer maps its one coordinate by a
/// spline driven by the context alone.
/// </summary>
public sealed class ConditionalFlowDistribution : nn.Module
{
    private readonly ModuleList<ConditionalCouplingTransform> layers;
    private readonly StandardNormal @base;

    public ConditionalFlowDistribution(int dimension, int contextDimension, ConditionalFlowSettings settings, long seed = 0)
        : base(nameof(ConditionalFlowDistribution))
    {
        ArgumentNullException.ThrowIfNull(settings);
        settings.Validate();
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The dimension must be positive.");
        if (contextDimension < 0) throw new ArgumentOutOfRangeException(nameof(contextDimension), contextDimension, "The context dimension must be ≥ 0.");
        NativeRuntime.EnsureLoaded();
        Dimension = dimension;
        ContextDimension = contextDimension;
        Settings = settings;
        Seed = seed;
        var generator = new Generator((ulong)seed);
        var list = new List<ConditionalCouplingTransform>();
        for (int k = 0; k < settings.Layers; k++)
        {
            var mask = dimension == 1 ? new[] { false } : CouplingMasks.Random(dimension, generator);
            list.Add(new ConditionalCouplingTransform(dimension, contextDimension, mask,
                new RationalQuadraticSplineMap(settings.Bins, settings.Bound), settings.Hidden, settings.Blocks, identityInit: true, generator));
        }
        layers = new ModuleList<ConditionalCouplingTransform>(list.ToArray());
        @base = new StandardNormal(dimension);
        RegisterComponents();
    }

    public int Dimension { get; }
    public int ContextDimension { get; }
    public ConditionalFlowSettings Settings { get; }
    /// <summary>Seeds the initial weights and the layers' coordinate splits.</summary>
    public long Seed { get; }
    public IReadOnlyList<ConditionalCouplingTransform> Layers => layers.ToList();

    /// <summary>The dtype and device of the weights.</summary>
    public (ScalarType DType, Device Device) Placement
    {
        get
        {
            var p = parameters().First();
            return (p.dtype, p.device);
        }
    }

    /// <summary>log q(x | c) for points x [n, d] and contexts c [n, c] (null without context) → [n].</summary>
    public Tensor LogProb(Tensor x, Tensor? context)
    {
        if (x.dim() != 2 || x.shape[1] != Dimension)
            throw new ArgumentException($"Expected points of shape [n, {Dimension}] but got [{string.Join(", ", x.shape)}].", nameof(x));
        ConditionalCouplingTransform.CheckContext(context, x.shape[0], ContextDimension);
        var z = x;
        Tensor? logDet = null;
        for (int k = layers.Count - 1; k >= 0; k--)
        {
            var (previous, ld) = layers[k].Inverse(z, context);
            z = previous;
            logDet = logDet is null ? ld : logDet.Plus(ld);
        }
        return @base.LogProb(z).Plus(logDet!);
    }

    /// <summary>Draws one x per context row (or <paramref name="count"/> rows without context): (x [n, d], log q(x | c) [n]).</summary>
    public (Tensor Sample, Tensor LogProb) Sample(long count, Tensor? context, Generator? generator = null)
    {
        if (count <= 0) throw new ArgumentOutOfRangeException(nameof(count), count, "The number of draws must be positive.");
        ConditionalCouplingTransform.CheckContext(context, count, ContextDimension);
        var (z, logQ) = @base.Sample(count, generator);
        for (int k = 0; k < layers.Count; k++)
        {
            var (next, ld) = layers[k].Forward(z, context);
            z = next;
            logQ = logQ - ld;
        }
        return (z, logQ);
    }
}
