using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>Base of test classes that write files: a fresh folder per test, deleted afterwards.</summary>
public abstract class TempDirectoryTest
{
    protected string TempDirectory { get; private set; } = "";

    [TestInitialize]
    public void CreateTempDirectory() => TempDirectory = PngTestFiles.NewTempDirectory();

    [TestCleanup]
    public void DeleteTempDirectory() => Directory.Delete(TempDirectory, recursive: true);
}
