using System.Globalization;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Transforms;

namespace Microsoft.ML.NormalizingFlows;

/// <summary>How a builder writes its calls down as <see cref="FlowStep"/>s and replays them from a <see cref="FlowSpec"/>.</summary>
public sealed partial class FlowBuilder
{
    private static FlowStep Step(string kind, params (string Key, string Value)[] arguments) =>
        new(kind, arguments.Length == 0 ? null : arguments.ToDictionary(a => a.Key, a => a.Value, StringComparer.Ordinal));

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);
    private static string Text(double value) => value.ToString("R", CultureInfo.InvariantCulture);
    private static string Text(bool value) => value ? "true" : "false";
    private static string MaskText(bool[] mask) => string.Concat(mask.Select(m => m ? '1' : '0'));

    /// <summary>
    /// Rebuilds a custom flow from its spec by replaying the recorded builder calls with the same seed (weights
    /// freshly initialized; load a state into it). A malformed recipe is an <see cref="ArgumentException"/> that
    /// names the step.
    /// </summary>
    internal static FlowDistribution Replay(FlowSpec spec)
    {
        if (spec.Steps is null)
            throw new ArgumentException($"A '{CustomPreset}' flow spec must list its builder steps.", nameof(spec));
        if (spec.Layers != spec.Steps.Count)
            throw new ArgumentException($"The '{CustomPreset}' flow spec says {spec.Layers} steps but lists {spec.Steps.Count}.", nameof(spec));
        // The base is described in preset settings (base, dof, learn-dof), read the way the presets read them.
        var baseSettings = new PresetSettings(CustomPreset, spec.Settings);
        var builder = new FlowBuilder(spec.Dimension, spec.Seed).WithBase(baseSettings.Base(spec.Dimension));
        for (int i = 0; i < spec.Steps.Count; i++)
        {
            var step = spec.Steps[i] ?? throw new ArgumentException($"Step {i} of the '{CustomPreset}' flow spec is missing.", nameof(spec));
            var a = new StepArguments($"step {i} ({step.Kind})", step.Arguments);
            switch (step.Kind)
            {
                case "affine-coupling": builder.AffineCoupling(a.Mask("mask", spec.Dimension), a.Int("hidden"), a.Int("blocks"), a.Real("clamp"), a.Bool("identity-init")); break;
                case "spline-coupling": builder.SplineCoupling(a.Mask("mask", spec.Dimension), a.Int("bins"), a.Real("bound"), a.Int("hidden"), a.Int("blocks"), a.Bool("identity-init")); break;
                case "iaf": builder.Iaf(a.Int("hidden"), a.Int("blocks"), a.Real("clamp"), a.Bool("identity-init")); break;
                case "maf": builder.Maf(a.Int("hidden"), a.Int("blocks"), a.Real("clamp"), a.Bool("identity-init")); break;
                case "spline-autoregressive":
                    var direction = a.Choice("direction", "iaf", "maf") == "maf" ? AutoregressiveDirection.Masked : AutoregressiveDirection.Inverse;
                    builder.SplineAutoregressive(direction, a.Int("bins"), a.Real("bound"), a.Int("hidden"), a.Int("blocks"), a.Bool("identity-init"));
                    break;
                case "reverse-permutation": builder.ReversePermutation(); break;
                case "random-permutation": builder.RandomPermutation(); break;
                case "lu-linear": builder.LULinear(); break;
                case "actnorm": builder.ActNorm(); break;
                case "planar": builder.Planar(a.Int("layers")); break;
                case "radial": builder.Radial(a.Int("layers")); break;
                default: throw new ArgumentException($"Step {i} of the '{CustomPreset}' flow spec has an unknown kind '{step.Kind}'.", nameof(spec));
            }
            a.RequireAllRead();
        }
        return baseSettings.Done(builder.Build());
    }

    /// <summary>Typed reads of one step's string arguments; every argument must be present, valid and used.</summary>
    private sealed class StepArguments(string where, IReadOnlyDictionary<string, string>? values)
    {
        private readonly HashSet<string> read = new(StringComparer.Ordinal);

        private string Raw(string key)
        {
            read.Add(key);
            if (values is null || !values.TryGetValue(key, out var raw))
                throw new ArgumentException($"The '{CustomPreset}' flow spec's {where} lacks the argument '{key}'.", "spec");
            return raw;
        }

        private ArgumentException Invalid(string key, string raw, string expected) =>
            new($"The '{CustomPreset}' flow spec's {where} has {key} = '{raw}'; expected {expected}.", "spec");

        public int Int(string key) =>
            int.TryParse(Raw(key), NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) ? v : throw Invalid(key, Raw(key), "an integer");

        public double Real(string key) =>
            double.TryParse(Raw(key), NumberStyles.Float, CultureInfo.InvariantCulture, out double v) ? v : throw Invalid(key, Raw(key), "a number");

        public bool Bool(string key) => Raw(key) switch { "true" => true, "false" => false, var raw => throw Invalid(key, raw, "true or false") };

        public string Choice(string key, params string[] allowed)
        {
            var raw = Raw(key);
            return allowed.Contains(raw) ? raw : throw Invalid(key, raw, string.Join(" or ", allowed));
        }

        public bool[] Mask(string key, int dimension)
        {
            var raw = Raw(key);
            if (raw.Length != dimension || raw.Any(c => c is not ('0' or '1'))) throw Invalid(key, raw, $"{dimension} characters of 0 and 1");
            return raw.Select(c => c == '1').ToArray();
        }

        public void RequireAllRead()
        {
            var unused = values?.Keys.Where(k => !read.Contains(k)).ToList();
            if (unused is { Count: > 0 })
                throw new ArgumentException($"The '{CustomPreset}' flow spec's {where} has unknown argument(s): {string.Join(", ", unused)}.", "spec");
        }
    }
}
