using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows;

/// <summary>Builds flows by preset name, reproducibly from a seed.</summary>
public static class FlowFactory
{
    private static readonly Dictionary<string, Func<int, int, Generator, FlowDistribution>> Presets = new(StringComparer.OrdinalIgnoreCase)
    {
        ["planar"] = (d, k, g) => new FlowDistribution(new StandardNormal(d), new PlanarFlow(d, k, generator: g)),
        ["planar-softplus"] = (d, k, g) => new FlowDistribution(new StandardNormal(d), new PlanarFlow(d, k, generator: g, constraint: PlanarConstraint.Softplus)),
        ["radial"] = (d, k, g) => new FlowDistribution(new StandardNormal(d), new RadialFlow(d, k, generator: g)),
        ["mean-field"] = (d, _, _) => new FlowDistribution(new DiagonalNormal(d)),
        ["full-rank"] = (d, _, _) => new FlowDistribution(new FullRankNormal(d)),
    };

    /// <summary>The preset names <see cref="Create"/> accepts.</summary>
    public static IReadOnlyCollection<string> Names => Presets.Keys;

    /// <summary>Registers a preset (later issues add RealNVP, MAF/IAF and spline flows this way).</summary>
    internal static void Register(string name, Func<int, int, Generator, FlowDistribution> factory) => Presets[name] = factory;

    /// <param name="name">A preset: planar, planar-softplus (Rezende &amp; Mohamed's m), radial, mean-field, full-rank.</param>
    /// <param name="dimension">d ≥ 1.</param>
    /// <param name="layers">K ≥ 1 (ignored by the Gaussian families).</param>
    /// <param name="seed">Seeds the initialization.</param>
    public static FlowDistribution Create(string name, int dimension, int layers, long seed = 0)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("A flow name is required.", nameof(name));
        if (!Presets.TryGetValue(name, out var factory))
            throw new ArgumentException($"Unknown flow '{name}'. Known flows: {string.Join(", ", Presets.Keys)}.", nameof(name));
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The dimension must be positive.");
        if (layers <= 0) throw new ArgumentOutOfRangeException(nameof(layers), layers, "The number of layers K must be positive.");
        var generator = new Generator((ulong)seed);
        var flow = factory(dimension, layers, generator);
        flow.Spec = new FlowSpec(name.ToLowerInvariant(), dimension, layers, seed);
        return flow;
    }

    /// <summary>Rebuilds the architecture a spec describes (weights freshly initialized; load a state into it).</summary>
    public static FlowDistribution Create(FlowSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return Create(spec.Preset, spec.Dimension, spec.Layers, spec.Seed);
    }
}
