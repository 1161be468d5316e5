using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows;

/// <summary>Builds flows by preset name, reproducibly from a seed (and optional settings).</summary>
public static class FlowFactory
{
    private delegate FlowDistribution Preset(int dimension, int layers, Generator generator, long seed, PresetSettings settings);

    private static readonly Dictionary<string, Preset> Presets = new(StringComparer.OrdinalIgnoreCase)
    {
        ["planar"] = (d, k, g, _, s) => s.Done(new FlowDistribution(new StandardNormal(d), new PlanarFlow(d, k, generator: g))),
        ["planar-softplus"] = (d, k, g, _, s) => s.Done(new FlowDistribution(new StandardNormal(d), new PlanarFlow(d, k, generator: g, constraint: PlanarConstraint.Softplus))),
        ["radial"] = (d, k, g, _, s) => s.Done(new FlowDistribution(new StandardNormal(d), new RadialFlow(d, k, generator: g))),
        ["mean-field"] = (d, _, _, _, s) => s.Done(new FlowDistribution(new DiagonalNormal(d))),
        ["full-rank"] = (d, _, _, _, s) => s.Done(new FlowDistribution(new FullRankNormal(d))),
        ["realnvp"] = (d, k, _, seed, s) => Stack(d, k, seed, s, "none", (b, i) => b.AffineCoupling(Mask(b, s), s.Hidden, s.Blocks, s.Clamp, s.IdentityInit)),
        ["nsf-coupling"] = (d, k, _, seed, s) => Stack(d, k, seed, s, "none", (b, i) => b.SplineCoupling(Mask(b, s), s.Bins, s.Bound, s.Hidden, s.Blocks, s.IdentityInit)),
        ["iaf"] = (d, k, _, seed, s) => Stack(d, k, seed, s, "reverse", (b, i) => b.Iaf(s.Hidden, s.Blocks, s.Clamp, s.IdentityInit)),
        ["maf"] = (d, k, _, seed, s) => Stack(d, k, seed, s, "reverse", (b, i) => b.Maf(s.Hidden, s.Blocks, s.Clamp, s.IdentityInit)),
        ["nsf-autoregressive"] = (d, k, _, seed, s) => Stack(d, k, seed, s, "reverse",
            (b, i) => b.SplineAutoregressive(s.Direction, s.Bins, s.Bound, s.Hidden, s.Blocks, s.IdentityInit)),
    };

    /// <summary>Presets made of coupling layers: one part of the coordinates conditions the other, so d ≥ 2.</summary>
    private static readonly HashSet<string> CouplingPresets = new(StringComparer.OrdinalIgnoreCase) { "realnvp", "nsf-coupling" };

    /// <summary>Whether <paramref name="preset"/> is made of coupling layers (realnvp, nsf-coupling).</summary>
    internal static bool IsCoupling(string preset) => CouplingPresets.Contains(preset);

    /// <summary>The <c>permutation</c> settings the layered presets accept: what mixes the coordinates between layers.</summary>
    internal static readonly IReadOnlyList<string> Permutations = new[] { "none", "reverse", "random", "lu" };

    /// <summary>The preset names <see cref="Create(string, int, int, long, IReadOnlyDictionary{string, string}?)"/> accepts.</summary>
    public static IReadOnlyCollection<string> Names => Presets.Keys;

    /// <summary>
    /// Settings the layered presets (realnvp, maf, iaf, nsf-coupling, nsf-autoregressive) read, with defaults:
    /// hidden = 64 (conditioner width), blocks = 1 (residual blocks), clamp = 3 (affine log-scale soft clamp),
    /// bins = 8 (1 to 999), bound = 5 (spline interval [−B, B]), mask = halves | random (couplings),
    /// permutation = none | reverse | random | lu (between layers; default none for couplings, reverse for
    /// autoregressive), actnorm = true (a final ActNorm), identity-init = true,
    /// direction = iaf | maf (nsf-autoregressive), base = normal | diag-normal | student-t, dof = 5 and
    /// learn-dof = true (with base = student-t only). planar, radial, mean-field and full-rank take none.
    /// A setting the preset does not read is an error, like an unknown one. See docs/flows.md.
    /// </summary>
    public static IReadOnlyList<string> SettingNames { get; } = PresetSettings.Known;

    /// <summary>Registers a preset (later issues add presets this way).</summary>
    internal static void Register(string name, Func<int, int, Generator, FlowDistribution> factory) =>
        Presets[name] = (d, k, g, _, s) => s.Done(factory(d, k, g));

    /// <param name="name">A preset: planar, planar-softplus (Rezende &amp; Mohamed's m), radial, mean-field, full-rank, realnvp, maf, iaf, nsf-coupling, nsf-autoregressive.</param>
    /// <param name="dimension">d ≥ 1 (coupling presets need d ≥ 2).</param>
    /// <param name="layers">K ≥ 1: planar/radial layers, or coupling/autoregressive layers (ignored by the Gaussian families).</param>
    /// <param name="seed">Seeds the initialization.</param>
    /// <param name="settings">Optional preset settings (see <see cref="SettingNames"/>); recorded in <see cref="FlowSpec.Settings"/>.</param>
    public static FlowDistribution Create(string name, int dimension, int layers, long seed = 0, IReadOnlyDictionary<string, string>? settings = null)
    {
        NativeRuntime.EnsureLoaded();
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("A flow name is required.", nameof(name));
        if (!Presets.TryGetValue(name, out var factory))
            throw new ArgumentException($"Unknown flow '{name}'. Known flows: {string.Join(", ", Presets.Keys)}.", nameof(name));
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The dimension must be positive.");
        if (dimension < 2 && CouplingPresets.Contains(name))
            throw new ArgumentOutOfRangeException(nameof(dimension), dimension,
                $"Flow preset '{name}' is made of coupling layers, which need d ≥ 2 (one part of the coordinates conditions the other). For d = 1 use iaf, maf, nsf-autoregressive, planar, radial or mean-field.");
        if (layers <= 0) throw new ArgumentOutOfRangeException(nameof(layers), layers, "The number of layers K must be positive.");
        var parsed = new PresetSettings(name, settings);
        var generator = new Generator((ulong)seed);
        var flow = factory(dimension, layers, generator, seed, parsed);
        var recorded = settings is null || settings.Count == 0 ? null : new Dictionary<string, string>(settings, StringComparer.Ordinal);
        flow.Spec = new FlowSpec(name.ToLowerInvariant(), dimension, layers, seed, recorded);
        return flow;
    }

    /// <summary>Rebuilds the architecture a spec describes (weights freshly initialized; load a state into it).</summary>
    public static FlowDistribution Create(FlowSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        NativeRuntime.EnsureLoaded();
        if (string.Equals(spec.Preset, FlowBuilder.CustomPreset, StringComparison.Ordinal)) return FlowBuilder.Replay(spec);
        if (spec.Steps is not null)
            throw new ArgumentException($"Flow preset '{spec.Preset}' takes no builder steps (only '{FlowBuilder.CustomPreset}' flows have them).", nameof(spec));
        return Create(spec.Preset, spec.Dimension, spec.Layers, spec.Seed, spec.Settings);
    }

    private static bool[]? Mask(FlowBuilder builder, PresetSettings s) => s.RandomMasks ? builder.RandomMask() : null;

    private static FlowDistribution Stack(int d, int k, long seed, PresetSettings s, string defaultPermutation, Action<FlowBuilder, int> layer)
    {
        var builder = new FlowBuilder(d, seed);
        builder.WithBase(s.Base(d));
        string permutation = s.Permutation ?? defaultPermutation;
        for (int i = 0; i < k; i++)
        {
            layer(builder, i);
            if (i == k - 1 || d == 1) continue;
            switch (permutation)
            {
                case "none": break;
                case "reverse": builder.ReversePermutation(); break;
                case "random": builder.RandomPermutation(); break;
                case "lu": builder.LULinear(); break;
                default: throw new ArgumentException($"Unknown permutation '{permutation}' ({string.Join(", ", Permutations)}).");
            }
        }
        if (s.FinalActNorm) builder.ActNorm();
        return s.Done(builder.Build());
    }
}
