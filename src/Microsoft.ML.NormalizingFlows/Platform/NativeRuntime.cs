using System.Runtime.ExceptionServices;
using System.Text;
using TorchSharp;

namespace Microsoft.ML.NormalizingFlows.Platform;

/// <summary>
/// Loads libtorch on first use and, when that fails on a Linux whose libstdc++ lacks the GLIBCXX version that
/// TorchSharp 0.107's libLibTorchSharp.so asks for, says so and what to do. TorchSharp's own message ("… doesn't
/// contain a reference to libtorch-cpu-linux-x64") points at the wrong cause: the package is there, the system
/// library is older. This happens to a project that references the library's project from outside this
/// repository (the NuGet package and this repository's builds carry the fix in their build targets).
/// </summary>
public static class NativeRuntime
{
    /// <summary>The version TorchSharp 0.107.0's native library declares it needs (GCC 13's libstdc++).</summary>
    public const string RequiredGlibcxxVersion = "GLIBCXX_3.4.32";

    private static readonly Lazy<ExceptionDispatchInfo?> LoadFailure = new(TryLoad, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Makes sure libtorch is loaded; throws a <see cref="InvalidOperationException"/> that explains a missing GLIBCXX version.</summary>
    public static void EnsureLoaded()
    {
        if (LoadFailure.Value is { } failure) failure.Throw();
    }

    private static ExceptionDispatchInfo? TryLoad()
    {
        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            return null;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            var explained = Explain(e, SystemLibraryHas);
            return ExceptionDispatchInfo.Capture(explained ?? e);
        }
    }

    /// <summary>
    /// The explanation for a libtorch load failure, or null when the GLIBCXX gap is not the cause (on Linux only:
    /// when the system libstdc++ lacks <see cref="RequiredGlibcxxVersion"/>).
    /// </summary>
    internal static InvalidOperationException? Explain(Exception loadFailure, Func<string, bool> systemLibstdcxxHasVersion)
    {
        if (!OperatingSystem.IsLinux() || systemLibstdcxxHasVersion(RequiredGlibcxxVersion)) return null;
        return new InvalidOperationException(
            $"TorchSharp could not load libtorch: its libLibTorchSharp.so needs {RequiredGlibcxxVersion} (GCC 13's libstdc++), which this system's " +
            "libstdc++ lacks (Debian 12 and Ubuntu 22.04 ship up to GLIBCXX_3.4.30). The only symbol behind that need is an unused marker, " +
            "and the library's build marks it weak in the copied native library. Your project does not run that step: reference the " +
            "Microsoft.ML.NormalizingFlows NuGet package (it carries the step in buildTransitive/), or, when referencing the project itself, " +
            "add <Import Project=\"PATH/TO/build/TorchSharpNativeFix.targets\" /> to your project (or a Directory.Build.targets), then rebuild. " +
            $"TorchSharp's message was: {Innermost(loadFailure).Message.ReplaceLineEndings(" ")}", loadFailure);
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is { } inner) e = inner;
        return e;
    }

    /// <summary>Whether the system libstdc++ (the first found in the usual places) defines a version, by its name string.</summary>
    internal static bool SystemLibraryHas(string version)
    {
        foreach (var path in new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6" })
            if (File.Exists(path)) return FileDefinesVersion(path, version);
        return true; // not found where expected: make no claim about it
    }

    /// <summary>A version definition appears as its name, NUL-terminated, in the library's string table.</summary>
    internal static bool FileDefinesVersion(string path, string version)
    {
        var needle = Encoding.ASCII.GetBytes(version + "\0");
        var bytes = File.ReadAllBytes(path);
        return bytes.AsSpan().IndexOf(needle) >= 0;
    }
}
