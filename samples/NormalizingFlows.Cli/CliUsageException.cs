namespace NormalizingFlows.Cli;

/// <summary>
/// The command line cannot be used as given. The message is one line, printed as is on stderr, and the
/// process exits with <see cref="ExitCode"/> (2, the usual code for usage errors).
/// </summary>
internal sealed class CliUsageException(string message, Exception? inner = null) : Exception(message, inner)
{
    public const int ExitCode = 2;
}
