using System.Diagnostics;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using NormalizingFlows.Cli;
using Spectre.Console;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>The CLI's live progress display and its Ctrl+C behaviour.</summary>
[TestClass]
public sealed class CliProgressTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void OnATerminalTrainingShowsABarWithEtaElboAndKl()
    {
        using var screen = new StringWriter();
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.Yes, Interactive = InteractionSupport.Yes, ColorSystem = ColorSystemSupport.NoColors, Out = new AnsiConsoleOutput(screen),
        });
        Assert.IsTrue(LiveProgress.IsAvailable(console));
        var result = LiveProgress.Run(console, 1_000, logNormalizer: 2.0, frames: null, progress =>
        {
            foreach (int it in new[] { 250, 500, 750, 1_000 })
            {
                progress.Report(new TrainingProgress(it, 1_000, 1.9, 6e-4, TimeSpan.FromSeconds(it / 1000.0), 0));
                Thread.Sleep(120); // let the display refresh
            }
            return new FitResult(new double[1_000], 0, TimeSpan.FromSeconds(1), 1_000, false);
        });
        var text = screen.ToString();
        TestContext.WriteLine(text);
        Assert.AreEqual(1_000, result.Iterations);
        StringAssert.Contains(text, "ELBO    1.9000");
        StringAssert.Contains(text, "KL ≈ 0.1000");
        StringAssert.Contains(text, "100%");
        // Redirected output keeps plain lines.
        var plain = AnsiConsole.Create(new AnsiConsoleSettings { Ansi = AnsiSupport.No, Interactive = InteractionSupport.No, Out = new AnsiConsoleOutput(new StringWriter()) });
        Assert.IsFalse(LiveProgress.IsAvailable(plain));
    }

    /// <summary>Whether this process ignores SIGINT (Linux: bit 2 of SigIgn in /proc/self/status).</summary>
    private static bool SigIntIgnored() =>
        File.Exists("/proc/self/status")
        && File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal)) is string mask
        && (Convert.ToUInt64(mask["SigIgn:".Length..].Trim(), 16) & 2) != 0;

    [TestMethod]
    [Timeout(180_000)]
    public void CtrlCExits130AfterWritingWhatWasFitted()
    {
        var dll = Path.Combine(AppContext.BaseDirectory, "NormalizingFlows.Cli.dll");
        var directory = PngTestFiles.NewTempDirectory();
        try
        {
            // A suite started in the background (`cmd &` from a non-interactive shell) runs with SIGINT ignored; the CLI would
            // inherit that, and .NET leaves an ignored SIGINT ignored, so Ctrl+C could never reach it (this test then timed out
            // on fresh clones run that way). env --default-signal=INT restores the default for the child (it execs, same PID).
            var start = new ProcessStartInfo(SigIntIgnored() ? "env" : "dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
            if (start.FileName == "env") { start.ArgumentList.Add("--default-signal=INT"); start.ArgumentList.Add("dotnet"); }
            foreach (var a in new[] { "exec", dll, "--iterations", "5000000", "--layers", "4", "--output", directory }) start.ArgumentList.Add(a);
            using var process = Process.Start(start)!;
            var stderr = process.StandardError.ReadToEndAsync();
            var lines = new List<string>();
            string? line;
            while ((line = process.StandardOutput.ReadLine()) is not null)
            {
                lines.Add(line);
                if (line.StartsWith("iter ", StringComparison.Ordinal)) break; // training is under way
            }
            Assert.IsNotNull(line, $"the CLI ended before training: {string.Join("\n", lines)} {stderr.Result}");
            using (var kill = Process.Start("kill", $"-INT {process.Id}")) kill.WaitForExit();
            var rest = process.StandardOutput.ReadToEndAsync();
            if (!process.WaitForExit(150_000))
            {
                // Seen once in a full-suite run on a fresh clone (the test timed out with no output): say where it stopped.
                process.Kill(entireProcessTree: true);
                Assert.Fail($"The CLI did not exit within 150 s of Ctrl+C. Its output:\n{string.Join("\n", lines)}\n{rest.Result}\n{stderr.Result}");
            }
            lines.AddRange(rest.Result.Split('\n'));
            var stdout = string.Join("\n", lines);
            TestContext.WriteLine(stdout);
            Assert.AreEqual(CliRunner.InterruptedExitCode, process.ExitCode, $"{stdout}\n{stderr.Result}");
            StringAssert.Contains(stdout, "Cancelled after");
            foreach (var png in new[] { "density.png", "samples.png", "training.png" })
                Assert.IsTrue(File.Exists(Path.Combine(directory, png)), $"{png} written");
        }
        finally { Directory.Delete(directory, recursive: true); }
    }
}
