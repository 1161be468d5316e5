using System.Diagnostics;

/// <summary>Runs a Python script to completion (the PyTorch anchor, the peers' timing script) and returns what it printed.</summary>
internal static class PythonProcess
{
    /// <returns>The exit code, standard output and standard error; null (after saying why) when the interpreter cannot start.</returns>
    public static (int ExitCode, string Output, string Errors)? Run(string python, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments) start.ArgumentList.Add(a);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        try
        {
            using var process = Process.Start(start)!;
            var errors = process.StandardError.ReadToEndAsync();   // both pipes drained at once, so neither can fill and block
            string output = process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return (process.ExitCode, output, errors.Result);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            Console.Error.WriteLine($"error: cannot start '{python}' ({e.Message}); install Debian's python3-torch or pass --python.");
            return null;
        }
    }
}
