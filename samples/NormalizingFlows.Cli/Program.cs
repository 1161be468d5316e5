// Entry point of the CLI: parse, run, map failures to exit codes (2 = bad command line, 130 = Ctrl+C).
using NormalizingFlows.Cli;
using Spectre.Console;

CliOptions options;
try
{
    options = CliOptions.Parse(args);
}
catch (CliUsageException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return CliUsageException.ExitCode;
}
if (options.ShowHelp)
{
    Console.WriteLine(CliOptions.HelpText());
    return 0;
}

// Ctrl+C stops after the current step; the pictures of what was fitted are still written.
using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) => { e.Cancel = true; cancel.Cancel(); };
try
{
    return CliRunner.Run(options, Console.Out, AnsiConsole.Console, cancel.Token);
}
catch (CliUsageException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return CliUsageException.ExitCode;
}
