using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using Microsoft.ML.NormalizingFlows;

namespace NormalizingFlows.Cli;

/// <summary>
/// The command line, declared with System.CommandLine (tokenizing, "--name=value", help, repeated or missing
/// values). Every option is a string here and is checked by <see cref="CliOptions.Apply"/>, whose messages say
/// what was expected; the preset is applied before the explicit options, wherever it stands.
/// </summary>
internal static class CliCommandLine
{
    private static readonly CliOptions Defaults = new();

    private static readonly (string Name, string HelpName, string Description, string? Default)[] Declared =
    [
        ("--target", "NAME", $"target density: one of {string.Join(", ", CliOptions.PlottableTargets)}", Defaults.Target),
        ("--flow", "NAME", $"flow family: one of {string.Join(", ", FlowFactory.Names)}", Defaults.Flow),
        ("--flow-settings", "S", "preset settings, e.g. hidden=128,bins=16,base=student-t (see docs/flows.md)", null),
        ("--layers", "K", "flow layers, K >= 1", Invariant(Defaults.Layers)),
        ("--iterations", "N", "optimizer steps", Invariant(Defaults.Iterations)),
        ("--batch", "B", "Monte Carlo draws per step", Invariant(Defaults.BatchSize)),
        ("--lr", "X", "learning rate > 0", Invariant(Defaults.LearningRate)),
        ("--optimizer", "NAME", "adam | rmsprop", Defaults.Optimizer.ToString().ToLowerInvariant()),
        ("--lr-decay", "G", "learning rate multiplied by G after every step, 0 < G <= 1", Invariant(Defaults.LearningRateDecay)),
        ("--seed", "S", "seed of the initialization and the draws", Invariant(Defaults.Seed)),
        ("--precision", "P", "float32 | float64", Defaults.Precision.ToString().ToLowerInvariant()),
        ("--device", "D", "cpu | cuda | cuda:N | auto", Defaults.Device),
        ("--threads", "N", "TorchSharp intra-op threads", Invariant(Defaults.Threads!.Value)),
        ("--output", "DIR", "folder for the PNGs", Defaults.Output),
        ("--frames-every", "N", "also write DIR/frames/frame_00001.png ... every N iterations", null),
        ("--preset", "NAME", PresetDescription(), Defaults.Preset),
    ];

    private static string Invariant(IFormattable value) => value.ToString(null, CultureInfo.InvariantCulture);

    private static string PresetDescription()
    {
        var s2 = CliOptions.Presets["seed2"];
        return $"seed | seed2; explicit options override the preset. seed: ring, planar K={Defaults.Layers}, adam lr {Invariant(Defaults.LearningRate)}, " +
               $"batch {Defaults.BatchSize}, {Defaults.Iterations} iterations. seed2: ring, planar K={s2.Layers}, rmsprop lr {Invariant(s2.LearningRate)}, " +
               $"decay {Invariant(s2.LearningRateDecay)}, batch {s2.BatchSize}, {s2.Iterations} iterations";
    }

    private static (RootCommand Root, Dictionary<string, Option<string>> Options) Build()
    {
        var root = new RootCommand(
            "Fits a normalizing flow to a 2-D target by maximizing the ELBO, shows progress and the exact KL, and writes pictures " +
            "(density.png: true vs fitted density; samples.png; training.png). With no options it reproduces the seed experiment. " +
            "Exit codes: 0 done, 1 training diverged, 2 invalid input (one line on stderr), 130 interrupted by Ctrl+C after writing what was fitted.");
        var options = new Dictionary<string, Option<string>>(StringComparer.Ordinal);
        foreach (var (name, helpName, description, defaultValue) in Declared)
        {
            var option = new Option<string>(name) { HelpName = helpName, Description = description };
            if (defaultValue is not null) option.DefaultValueFactory = _ => defaultValue;
            root.Options.Add(option);
            options.Add(name, option);
        }
        return (root, options);
    }

    public static CliOptions Parse(IReadOnlyList<string> args)
    {
        ArgumentNullException.ThrowIfNull(args);
        var (root, options) = Build();
        var result = root.Parse(args);
        ThrowFirstProblem(result, options);
        if (result.Action is System.CommandLine.Help.HelpAction) return new CliOptions { ShowHelp = true };
        string? Given(string name) => result.GetResult(options[name]) is { Implicit: false } r ? r.Tokens.Single().Value : null;
        var parsed = CliOptions.PresetNamed(Given("--preset") ?? Defaults.Preset);
        foreach (var name in options.Keys.Where(n => n != "--preset"))
            if (Given(name) is string value) parsed = CliOptions.Apply(parsed, name, value);
        if (parsed.FlowSettings.Count > 0) CliOptions.CheckFlowSettings(parsed);
        return parsed;
    }

    /// <summary>Turns System.CommandLine's errors into one line each, in the words the CLI has always used.</summary>
    private static void ThrowFirstProblem(ParseResult result, Dictionary<string, Option<string>> options)
    {
        if (result.UnmatchedTokens.Count > 0)
        {
            var token = result.UnmatchedTokens[0];
            throw token.StartsWith('-')
                ? new CliUsageException($"Unknown option '{token.Split('=', ':')[0]}'. Run with --help to list the options.")
                : new CliUsageException($"Unexpected argument '{token}'. Options look like --name VALUE; run with --help to list them.");
        }
        foreach (var (name, option) in options)
        {
            if (result.GetResult(option) is not { Implicit: false } given) continue;
            if (given.IdentifierTokenCount > 1) throw new CliUsageException($"Option {name} was given more than once.");
            if (given.Tokens.Count == 0) throw new CliUsageException($"Option {name} needs a value.");
        }
        if (result.Errors.Count > 0) throw new CliUsageException(result.Errors[0].Message.ReplaceLineEndings(" "));
    }

    /// <summary>System.CommandLine's help for the CLI, as text.</summary>
    public static string HelpText()
    {
        var (root, _) = Build();
        using var text = new StringWriter(CultureInfo.InvariantCulture);
        root.Parse(["--help"]).Invoke(new InvocationConfiguration { Output = text });
        return text.ToString();
    }
}
