using System.Diagnostics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using NormalizingFlows.Cli;

namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class CliOptionsTests
{
    [TestMethod]
    public void NoArguments_GiveTheSeedExperiment()
    {
        var o = CliOptions.Parse([]);
        Assert.AreEqual("ring", o.Target);
        Assert.AreEqual("planar", o.Flow);
        Assert.AreEqual(32, o.Layers);
        Assert.AreEqual(20_000, o.Iterations);
        Assert.AreEqual(128, o.BatchSize);
        Assert.AreEqual(6e-4, o.LearningRate);
        Assert.AreEqual(OptimizerKind.Adam, o.Optimizer);
        Assert.AreEqual(1.0, o.LearningRateDecay);
        Assert.AreEqual(0L, o.Seed);
        Assert.AreEqual(Precision.Float32, o.Precision);
        Assert.AreEqual("cpu", o.Device);
        Assert.AreEqual(1, o.Threads);
        Assert.AreEqual("./flows-output", o.Output);
        Assert.IsNull(o.FramesEvery);
        Assert.IsFalse(o.ShowHelp);
        var t = o.ToTrainerOptions();
        Assert.AreEqual(20_000, t.Iterations);
        Assert.AreEqual(128, t.BatchSize);
        Assert.AreEqual(6e-4, t.LearningRate);
        Assert.AreEqual(500, t.ReportEvery);
    }

    [TestMethod]
    public void Seed2Preset_IsSeed002SecondExperiment()
    {
        var o = CliOptions.Parse(["--preset", "seed2"]);
        Assert.AreEqual("ring", o.Target);
        Assert.AreEqual(16, o.Layers);
        Assert.AreEqual(10_000, o.Iterations);
        Assert.AreEqual(40, o.BatchSize);
        Assert.AreEqual(0.01, o.LearningRate);
        Assert.AreEqual(OptimizerKind.RMSprop, o.Optimizer);
        Assert.AreEqual(0.999, o.LearningRateDecay);
    }

    [TestMethod]
    public void ExplicitOptions_OverrideThePreset_WhereverItStands()
    {
        var o = CliOptions.Parse(["--layers", "4", "--preset", "seed2", "--lr=0.5", "--optimizer", "ADAM"]);
        Assert.AreEqual(4, o.Layers);
        Assert.AreEqual(0.5, o.LearningRate);
        Assert.AreEqual(OptimizerKind.Adam, o.Optimizer);
        Assert.AreEqual(40, o.BatchSize); // still from seed2
    }

    [TestMethod]
    public void EveryOption_IsParsed()
    {
        var o = CliOptions.Parse(["--target", "u1", "--flow", "radial", "--layers", "3", "--iterations", "7", "--batch", "9",
            "--lr", "1e-3", "--optimizer", "rmsprop", "--lr-decay", "0.99", "--seed", "-5", "--precision", "float64",
            "--device", "auto", "--threads", "1", "--output", "out dir", "--frames-every", "300"]);
        Assert.AreEqual(("u1", "radial", 3, 7, 9), (o.Target, o.Flow, o.Layers, o.Iterations, o.BatchSize));
        Assert.AreEqual((1e-3, OptimizerKind.RMSprop, 0.99, -5L), (o.LearningRate, o.Optimizer, o.LearningRateDecay, o.Seed));
        Assert.AreEqual((Precision.Float64, "auto", (int?)1, "out dir", (int?)300), (o.Precision, o.Device, o.Threads, o.Output, o.FramesEvery));
        // Frames every 300 and printing every 500 both need a report: the trainer reports every gcd = 100.
        Assert.AreEqual(100, o.ToTrainerOptions().ReportEvery);
    }

    [TestMethod]
    public void FlowSettings_AreParsedAndReachTheFlow()
    {
        var o = CliOptions.Parse(["--flow-settings", "hidden=16, bins=4", "--flow", "nsf-coupling", "--layers", "2"]);
        Assert.AreEqual("16", o.FlowSettings["hidden"]);
        Assert.AreEqual("4", o.FlowSettings["BINS"]);
        var q = FlowFactory.Create(o.Flow, 2, o.Layers, o.Seed, o.FlowSettings);
        Assert.AreEqual("4", q.Spec!.Settings!["bins"]);
        Assert.AreEqual(0, CliOptions.Parse([]).FlowSettings.Count);
    }

    [TestMethod]
    public void Help_ListsEveryOptionWithItsDefault()
    {
        Assert.IsTrue(CliOptions.Parse(["--help"]).ShowHelp);
        Assert.IsTrue(CliOptions.Parse(["-h"]).ShowHelp);
        var help = CliOptions.HelpText();
        foreach (var option in new[] { "--target", "--flow", "--flow-settings", "--layers", "--iterations", "--batch", "--lr ", "--optimizer", "--lr-decay",
                     "--seed", "--precision", "--device", "--threads", "--output", "--frames-every", "--preset", "--help" })
            StringAssert.Contains(help, option);
        foreach (var defaultValue in new[] { "[default: ring]", "[default: planar]", "[default: 32]", "[default: 20000]", "[default: 128]", "[default: 0.0006]",
                     "[default: adam]", "[default: ./flows-output]", "image:PATH.png", "130" })
            StringAssert.Contains(help, defaultValue);
    }

    [TestMethod]
    [DataRow(new[] { "--bogus", "1" }, "Unknown option '--bogus'")]
    [DataRow(new[] { "--bogus=1" }, "Unknown option '--bogus'")]
    [DataRow(new[] { "ring" }, "Unexpected argument 'ring'")]
    [DataRow(new[] { "--layers" }, "Option --layers needs a value")]
    [DataRow(new[] { "--layers", "abc" }, "Option --layers expects an integer (the number of flow layers K); got 'abc'")]
    [DataRow(new[] { "--layers", "2.5" }, "Option --layers expects an integer")]
    [DataRow(new[] { "--layers", "0" }, "Option --layers must be positive (the number of flow layers K); got 0")]
    [DataRow(new[] { "--layers", "-3" }, "Option --layers must be positive")]
    [DataRow(new[] { "--batch", "0" }, "Option --batch must be positive (the batch size); got 0")]
    [DataRow(new[] { "--batch", "-1" }, "Option --batch must be positive")]
    [DataRow(new[] { "--iterations", "0" }, "Option --iterations must be positive")]
    [DataRow(new[] { "--lr", "0" }, "Option --lr must be a positive finite number; got 0")]
    [DataRow(new[] { "--lr", "-0.1" }, "Option --lr must be a positive finite number; got -0.1")]
    [DataRow(new[] { "--lr", "NaN" }, "Option --lr must be a positive finite number")]
    [DataRow(new[] { "--lr", "fast" }, "Option --lr expects a number; got 'fast'")]
    [DataRow(new[] { "--lr-decay", "1.5" }, "Option --lr-decay must lie in (0, 1]")]
    [DataRow(new[] { "--lr-decay", "0" }, "Option --lr-decay must lie in (0, 1]")]
    [DataRow(new[] { "--seed", "x" }, "Option --seed expects an integer; got 'x'")]
    [DataRow(new[] { "--target", "donut" }, "Unknown target 'donut'. Known targets: u1,")]
    [DataRow(new[] { "--target", "funnel" }, "Target 'funnel' is 10-D; the CLI fits and draws 2-D targets only.")]
    [DataRow(new[] { "--target", "image:" }, "Target image: needs a PNG path")]
    [DataRow(new[] { "--target", "image:/no/such/file.png" }, "Target image file '/no/such/file.png' does not exist")]
    [DataRow(new[] { "--flow", "glow" }, "Unknown flow 'glow'. Known flows: planar,")]
    [DataRow(new[] { "--flow", "nsf-coupling", "--flow-settings", "hidden" }, "Option --flow-settings expects key=value pairs separated by commas")]
    [DataRow(new[] { "--flow", "nsf-coupling", "--flow-settings", "bins=8,bins=9" }, "Option --flow-settings names 'bins' more than once")]
    [DataRow(new[] { "--flow", "nsf-coupling", "--flow-settings", "colour=red" }, "Option --flow-settings does not suit flow 'nsf-coupling': Unknown flow setting 'colour'")]
    [DataRow(new[] { "--flow", "nsf-coupling", "--flow-settings", "bins=many" }, "Option --flow-settings does not suit flow 'nsf-coupling':")]
    [DataRow(new[] { "--flow-settings", "hidden=32" }, "Option --flow-settings does not suit flow 'planar':")]
    [DataRow(new[] { "--optimizer", "sgd" }, "Option --optimizer must be one of adam, rmsprop; got 'sgd'")]
    [DataRow(new[] { "--precision", "float16" }, "Option --precision must be one of float32, float64; got 'float16'")]
    [DataRow(new[] { "--device", "tpu" }, "Option --device must be one of cpu, cuda, cuda:N, auto; got 'tpu'")]
    [DataRow(new[] { "--threads", "0" }, "Option --threads must be positive")]
    [DataRow(new[] { "--frames-every", "0" }, "Option --frames-every must be positive")]
    [DataRow(new[] { "--preset", "seed3" }, "Unknown preset 'seed3'. Known presets: seed, seed2")]
    [DataRow(new[] { "--lr", "0.1", "--lr", "0.2" }, "Option --lr was given more than once")]
    [DataRow(new[] { "--output", " " }, "Option --output needs a directory name")]
    public void InvalidInput_GivesItsSpecificOneLineError(string[] args, string expected)
    {
        var e = Assert.ThrowsExactly<CliUsageException>(() => CliOptions.Parse(args));
        StringAssert.StartsWith(e.Message, expected);
        Assert.IsFalse(e.Message.Contains('\n'), $"The message must be one line: {e.Message}");
    }

    private static (int ExitCode, string Stdout, string Stderr) RunBuiltCli(params string[] args)
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "NormalizingFlows.Cli.dll");
        Assert.IsTrue(File.Exists(dll), $"The CLI was not copied next to the tests: {dll}");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "exec", dll }.Concat(args)) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderrTask = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        Assert.IsTrue(process.WaitForExit(120_000));
        return (process.ExitCode, stdout, stderrTask.Result);
    }

    [TestMethod]
    public void BuiltCli_ExitsWith2AndOneStderrLine_OnBadInput()
    {
        var (exitCode, stdout, stderr) = RunBuiltCli("--layers", "0");
        Assert.AreEqual(2, exitCode, $"stdout: {stdout}\nstderr: {stderr}");
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(1, lines.Length, stderr);
        StringAssert.StartsWith(lines[0], "error: Option --layers must be positive");
        Assert.AreEqual("", stdout);
    }

    [TestMethod]
    public void BuiltCli_ExitsWith2OnAPngDeclaringAHugeSize()
    {
        // Reproduction: exit 134 (an unhandled OverflowException in the hand-written decoder).
        var directory = PngTestFiles.NewTempDirectory();
        try
        {
            var path = ImageTargetTests.CraftHugePng(directory);
            var (exitCode, stdout, stderr) = RunBuiltCli("--target", "image:" + path, "--iterations", "10", "--output", Path.Combine(directory, "out"));
            Assert.AreEqual(2, exitCode, $"stdout: {stdout}\nstderr: {stderr}");
            StringAssert.Contains(stderr, "huge.png");
            Assert.IsFalse(stderr.Contains("   at "), $"no stack trace: {stderr}");
        }
        finally { Directory.Delete(directory, recursive: true); }
    }
}
