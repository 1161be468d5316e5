using System.Globalization;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Transforms;

namespace Microsoft.ML.NormalizingFlows;

/// <summary>
/// Typed view of a flow's string settings (a preset's, or a <see cref="FlowBuilder"/> flow's base); rejects
/// unknown keys and unread ones. <see cref="Describe"/> is the inverse of <see cref="Base"/>.
/// </summary>
internal sealed class PresetSettings
{
    public static readonly string[] Known =
        { "hidden", "blocks", "clamp", "bins", "bound", "mask", "permutation", "actnorm", "identity-init", "direction", "base", "dof", "learn-dof" };

    /// <summary>The parameter of <see cref="FlowFactory.Create(string, int, int, long, IReadOnlyDictionary{string, string}?)"/> the settings came in.</summary>
    private const string SettingsArgument = "settings";

    private readonly string preset;
    private readonly IReadOnlyDictionary<string, string> values;
    private readonly HashSet<string> read = new(StringComparer.OrdinalIgnoreCase);

    public PresetSettings(string preset, IReadOnlyDictionary<string, string>? settings)
    {
        this.preset = preset;
        values = settings is null ? new Dictionary<string, string>() : new Dictionary<string, string>(settings, StringComparer.OrdinalIgnoreCase);
        foreach (var key in values.Keys)
            if (!Known.Contains(key, StringComparer.OrdinalIgnoreCase))
                throw new ArgumentException($"Unknown flow setting '{key}'. Known settings: {string.Join(", ", Known)}.", SettingsArgument);
    }

    private string? Raw(string key) { read.Add(key); return values.TryGetValue(key, out var v) ? v.Trim() : null; }

    private int Int(string key, int fallback, int min, int max = int.MaxValue)
    {
        var raw = Raw(key);
        if (raw is null) return fallback;
        if (!int.TryParse(raw, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v) || v < min || v > max)
            throw new ArgumentException(max == int.MaxValue
                ? $"Flow setting '{key}' = '{raw}' must be an integer ≥ {min}."
                : $"Flow setting '{key}' = '{raw}' must be an integer in [{min}, {max}].", SettingsArgument);
        return v;
    }

    private double Real(string key, double fallback)
    {
        var raw = Raw(key);
        if (raw is null) return fallback;
        if (!double.TryParse(raw, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) || !(v > 0) || double.IsInfinity(v))
            throw new ArgumentException($"Flow setting '{key}' = '{raw}' must be a positive number.", SettingsArgument);
        return v;
    }

    private bool Bool(string key, bool fallback)
    {
        var raw = Raw(key);
        if (raw is null) return fallback;
        if (!bool.TryParse(raw, out bool v)) throw new ArgumentException($"Flow setting '{key}' = '{raw}' must be true or false.", SettingsArgument);
        return v;
    }

    private string? Choice(string key, params string[] allowed)
    {
        var raw = Raw(key)?.ToLowerInvariant();
        if (raw is not null && !allowed.Contains(raw))
            throw new ArgumentException($"Flow setting '{key}' = '{raw}' must be one of: {string.Join(", ", allowed)}.", SettingsArgument);
        return raw;
    }

    public int Hidden => Int("hidden", 64, 1);
    public int Blocks => Int("blocks", 1, 0);
    public double Clamp => Real("clamp", 3.0);
    // A spline's minimum bin width (1e-3 of the interval) allows at most 999 bins.
    public int Bins => Int("bins", 8, 1, 999);
    public double Bound => Real("bound", 5.0);
    public bool RandomMasks => Choice("mask", "halves", "random") == "random";
    public string? Permutation => Choice("permutation", FlowFactory.Permutations.ToArray());
    public bool FinalActNorm => Bool("actnorm", true);
    public bool IdentityInit => Bool("identity-init", true);
    public AutoregressiveDirection Direction =>
        Choice("direction", "iaf", "maf") == "maf" ? AutoregressiveDirection.Masked : AutoregressiveDirection.Inverse;

    public BaseDistribution Base(int d)
    {
        // dof and learn-dof are read only for a Student-t base, so giving them with another base is reported as unused.
        return (Choice("base", "normal", "diag-normal", "full-rank", "student-t") ?? "normal") switch
        {
            "diag-normal" => new DiagonalNormal(d),
            "full-rank" => new FullRankNormal(d),
            "student-t" => new StudentT(d, Real("dof", 5.0), Bool("learn-dof", true)),
            _ => new StandardNormal(d),
        };
    }

    /// <summary>The settings that make <see cref="Base"/> rebuild this base, or null for a base it cannot build.</summary>
    public static Dictionary<string, string>? Describe(BaseDistribution distribution) => distribution switch
    {
        StandardNormal => new(),
        DiagonalNormal => new() { ["base"] = "diag-normal" },
        FullRankNormal => new() { ["base"] = "full-rank" },
        StudentT t => new()
        {
            ["base"] = "student-t",
            ["dof"] = t.DegreesOfFreedom[0].ToDouble().ToString("R", CultureInfo.InvariantCulture),
            ["learn-dof"] = t.Learnable ? "true" : "false",
        },
        _ => null,
    };

    /// <summary>Every given setting must have been read by the preset (a setting a preset ignores is a mistake).</summary>
    public FlowDistribution Done(FlowDistribution flow)
    {
        var unused = values.Keys.Where(k => !read.Contains(k)).ToList();
        if (unused.Count > 0)
            throw new ArgumentException($"Flow preset '{preset}' does not use the setting(s): {string.Join(", ", unused)}.", SettingsArgument);
        return flow;
    }
}
