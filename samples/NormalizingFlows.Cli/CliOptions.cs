using System.Globalization;
using Microsoft.ML.NormalizingFlows;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;

namespace NormalizingFlows.Cli;

/// <summary>
/// Everything the CLI can be told. The defaults are the seed's experiment (ring, planar K = 32, Adam
/// lr 6e-4, batch 128, 20,000 iterations, seed 0), so a bare run reproduces it.
/// </summary>
internal sealed record CliOptions
{
    public string Preset { get; init; } = "seed";
    public string Target { get; init; } = "ring";
    public string Flow { get; init; } = "planar";
    /// <summary>Preset settings passed to <see cref="FlowFactory.Create(string, int, int, long, IReadOnlyDictionary{string, string}?)"/> (e.g. hidden, bins).</summary>
    public IReadOnlyDictionary<string, string> FlowSettings { get; init; } = new Dictionary<string, string>();
    public int Layers { get; init; } = 32;
    public int Iterations { get; init; } = 20_000;
    public int BatchSize { get; init; } = 128;
    public double LearningRate { get; init; } = 6e-4;
    public OptimizerKind Optimizer { get; init; } = OptimizerKind.Adam;
    public double LearningRateDecay { get; init; } = 1.0;
    public long Seed { get; init; }
    public Precision Precision { get; init; } = Precision.Float32;
    public string Device { get; init; } = "cpu";
    /// <summary>One thread by default: small flows are bound by per-operation overhead, and the PyTorch anchor
    /// (shared/bench/seed_planar_ring.py) is run with one thread too.</summary>
    public int? Threads { get; init; } = 1;
    public string Output { get; init; } = "./flows-output";
    public int? FramesEvery { get; init; }
    public bool ShowHelp { get; init; }

    /// <summary>How often progress is printed (the seed logged every 500 iterations).</summary>
    public const int PrintEvery = 500;

    /// <summary>Draws for the final ELBO/KL estimate.</summary>
    public const int EvaluationDraws = 20_000;

    public static IReadOnlyDictionary<string, CliOptions> Presets { get; } = new Dictionary<string, CliOptions>(StringComparer.OrdinalIgnoreCase)
    {
        ["seed"] = new CliOptions(),
        // Seed 002's second experiment: RMSprop with exponential decay, a shorter flow, small batches.
        ["seed2"] = new CliOptions
        {
            Preset = "seed2", Layers = 16, Iterations = 10_000, BatchSize = 40, LearningRate = 0.01,
            Optimizer = OptimizerKind.RMSprop, LearningRateDecay = 0.999,
        },
    };

    /// <summary>
    /// Parses the command line (System.CommandLine: "--name value" or "--name=value"). The preset is applied
    /// first, whatever its position, so that explicit options always override it. Throws
    /// <see cref="CliUsageException"/> with the first problem in one line.
    /// </summary>
    public static CliOptions Parse(IReadOnlyList<string> args) => CliCommandLine.Parse(args);

    /// <summary>Applies one explicitly given option (its raw text) to the options.</summary>
    internal static CliOptions Apply(CliOptions o, string name, string value) => name switch
    {
        "--target" => o with { Target = ParseTarget(value) },
        "--flow" => o with { Flow = ParseFlow(value) },
        "--flow-settings" => o with { FlowSettings = ParseFlowSettings(value) },
        "--layers" => o with { Layers = PositiveInt(name, value, "the number of flow layers K") },
        "--iterations" => o with { Iterations = PositiveInt(name, value, "the number of iterations") },
        "--batch" => o with { BatchSize = PositiveInt(name, value, "the batch size") },
        "--lr" => o with { LearningRate = PositiveDouble(name, value) },
        "--optimizer" => o with { Optimizer = Choice(name, value, new Dictionary<string, OptimizerKind> { ["adam"] = OptimizerKind.Adam, ["rmsprop"] = OptimizerKind.RMSprop }) },
        "--lr-decay" => o with { LearningRateDecay = Decay(name, value) },
        "--seed" => o with { Seed = Long(name, value) },
        "--precision" => o with { Precision = Choice(name, value, new Dictionary<string, Precision> { ["float32"] = Precision.Float32, ["float64"] = Precision.Float64 }) },
        "--device" => o with { Device = ParseDevice(value) },
        "--threads" => o with { Threads = PositiveInt(name, value, "the number of threads") },
        "--output" => o with { Output = string.IsNullOrWhiteSpace(value) ? throw new CliUsageException("Option --output needs a directory name.") : value },
        "--frames-every" => o with { FramesEvery = PositiveInt(name, value, "the frame interval in iterations") },
        _ => throw new CliUsageException($"Unknown option '{name}'. Run with --help to list the options."),
    };

    /// <summary>The preset named, or a usage error listing the presets.</summary>
    internal static CliOptions PresetNamed(string name) => Presets.TryGetValue(name, out var preset) ? preset
        : throw new CliUsageException($"Unknown preset '{name}'. Known presets: {string.Join(", ", Presets.Keys)}.");

    /// <summary>"key=value,key=value" → a dictionary; the keys and values are checked against the flow afterwards.</summary>
    private static Dictionary<string, string> ParseFlowSettings(string value)
    {
        var settings = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var item in value.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            int eq = item.IndexOf('=');
            if (eq <= 0 || eq == item.Length - 1)
                throw new CliUsageException($"Option --flow-settings expects key=value pairs separated by commas (e.g. hidden=128,bins=16); got '{item}'.");
            if (!settings.TryAdd(item[..eq].Trim(), item[(eq + 1)..].Trim()))
                throw new CliUsageException($"Option --flow-settings names '{item[..eq].Trim()}' more than once.");
        }
        if (settings.Count == 0) throw new CliUsageException("Option --flow-settings needs at least one key=value pair.");
        return settings;
    }

    /// <summary>Builds a one-layer flow of the chosen preset with the settings, so an unknown or unused key or a bad
    /// value is a usage error before any training starts.</summary>
    internal static void CheckFlowSettings(CliOptions o)
    {
        try { FlowFactory.Create(o.Flow, 2, 1, 0, o.FlowSettings).Dispose(); }
        catch (ArgumentException e)
        {
            throw new CliUsageException($"Option --flow-settings does not suit flow '{o.Flow}': {e.Message.ReplaceLineEndings(" ")}", e);
        }
    }

    private static int PositiveInt(string name, string value, string what)
    {
        if (!int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n))
            throw new CliUsageException($"Option {name} expects an integer ({what}); got '{value}'.");
        if (n <= 0) throw new CliUsageException($"Option {name} must be positive ({what}); got {n}.");
        return n;
    }

    private static long Long(string name, string value) =>
        long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n) ? n
            : throw new CliUsageException($"Option {name} expects an integer; got '{value}'.");

    private static double Number(string name, string value) =>
        double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double x) ? x
            : throw new CliUsageException($"Option {name} expects a number; got '{value}'.");

    private static double PositiveDouble(string name, string value)
    {
        double x = Number(name, value);
        if (!(x > 0) || double.IsInfinity(x)) throw new CliUsageException($"Option {name} must be a positive finite number; got {value}.");
        return x;
    }

    private static double Decay(string name, string value)
    {
        double x = Number(name, value);
        if (!(x > 0 && x <= 1)) throw new CliUsageException($"Option {name} must lie in (0, 1] (1 = constant learning rate); got {value}.");
        return x;
    }

    private static T Choice<T>(string name, string value, Dictionary<string, T> choices) =>
        choices.TryGetValue(value.ToLowerInvariant(), out var v) ? v
            : throw new CliUsageException($"Option {name} must be one of {string.Join(", ", choices.Keys)}; got '{value}'.");

    private static string ParseDevice(string value)
    {
        var v = value.ToLowerInvariant();
        if (v is "cpu" or "cuda" or "auto") return v;
        if (v.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(v[5..], NumberStyles.None, CultureInfo.InvariantCulture, out _)) return v;
        throw new CliUsageException($"Option --device must be one of cpu, cuda, cuda:N, auto; got '{value}'.");
    }

    private static string ParseFlow(string value)
    {
        var match = FlowFactory.Names.FirstOrDefault(n => string.Equals(n, value, StringComparison.OrdinalIgnoreCase));
        return match ?? throw new CliUsageException($"Unknown flow '{value}'. Known flows: {string.Join(", ", FlowFactory.Names)}.");
    }

    private static string ParseTarget(string value)
    {
        if (value.StartsWith("image:", StringComparison.OrdinalIgnoreCase))
        {
            var path = value["image:".Length..];
            if (string.IsNullOrWhiteSpace(path)) throw new CliUsageException("Target image: needs a PNG path, e.g. --target image:letter.png.");
            if (!File.Exists(path)) throw new CliUsageException($"Target image file '{path}' does not exist.");
            return value;
        }
        var known = TargetGallery.Names.Where(n => !n.StartsWith("image:", StringComparison.Ordinal));
        var match = known.FirstOrDefault(n => string.Equals(n, value, StringComparison.OrdinalIgnoreCase))
            ?? throw new CliUsageException($"Unknown target '{value}'. Known targets: {string.Join(", ", PlottableTargets)}.");
        RequireTwoDimensional(TargetGallery.Create(match), match);
        return match;
    }

    /// <summary>The CLI fits and draws 2-D targets only: checked when the option is parsed and again by the runner,
    /// which may be handed options built in code.</summary>
    internal static void RequireTwoDimensional(Target target, string name)
    {
        if (target.Dimension != 2)
            throw new CliUsageException($"Target '{name}' is {target.Dimension}-D; the CLI fits and draws 2-D targets only. " +
                                        $"Fit it from C# (TargetGallery.Create(\"{name}\")) or see the bench verb 'quality' (docs/quality.md).");
    }

    /// <summary>The gallery's 2-D targets (and image:PATH.png), the ones the CLI can draw.</summary>
    internal static IEnumerable<string> PlottableTargets =>
        TargetGallery.Names.Where(n => n.StartsWith("image:", StringComparison.Ordinal) || TargetGallery.Create(n).Dimension == 2);

    /// <summary>The --help text (System.CommandLine's help: every option with its default).</summary>
    public static string HelpText() => CliCommandLine.HelpText();

    /// <summary>The trainer settings these options stand for.</summary>
    public TrainerOptions ToTrainerOptions() => new()
    {
        Iterations = Iterations,
        BatchSize = BatchSize,
        LearningRate = LearningRate,
        Optimizer = Optimizer,
        LearningRateDecay = LearningRateDecay,
        Seed = Seed,
        Precision = Precision,
        Device = Device,
        Threads = Threads,
        // The trainer reports every ReportEvery iterations; printing and frames both need a report.
        ReportEvery = FramesEvery is int f ? (int)System.Numerics.BigInteger.GreatestCommonDivisor(PrintEvery, f) : PrintEvery,
    };
}
