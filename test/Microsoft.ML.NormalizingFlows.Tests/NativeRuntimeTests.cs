using Microsoft.ML.NormalizingFlows.Platform;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>The explanation given when libtorch cannot load because the system libstdc++ is too old.</summary>
[TestClass]
public sealed class NativeRuntimeTests : TempDirectoryTest
{
    [TestMethod]
    public void AMissingGlibcxxVersionIsExplainedWithTheFix()
    {
        // TorchSharp's own words blame a missing package reference; the cause is the system library.
        var torchSharp = new NotSupportedException("This application or script uses TorchSharp but doesn't contain a reference to libtorch-cpu-linux-x64, Version=2.10.0.");
        var explained = NativeRuntime.Explain(torchSharp, _ => false);
        if (!OperatingSystem.IsLinux()) { Assert.IsNull(explained); return; }
        Assert.IsNotNull(explained);
        StringAssert.Contains(explained.Message, NativeRuntime.RequiredGlibcxxVersion);
        StringAssert.Contains(explained.Message, "TorchSharpNativeFix.targets");
        StringAssert.Contains(explained.Message, "NuGet package");
        Assert.AreSame(torchSharp, explained.InnerException);
        Assert.IsNull(NativeRuntime.Explain(torchSharp, _ => true), "a system that has the version: some other cause, left as it is");
    }

    [TestMethod]
    public void VersionDefinitionsAreFoundByTheirNames()
    {
        var with = Path.Combine(TempDirectory, "with.so");
        File.WriteAllBytes(with, new byte[] { 0x7F, (byte)'E', 0 }.Concat("GLIBCXX_3.4.30\0GLIBCXX_3.4.32\0"u8.ToArray()).ToArray());
        var without = Path.Combine(TempDirectory, "without.so");
        File.WriteAllBytes(without, "GLIBCXX_3.4.30\0GLIBCXX_3.4.321\0"u8.ToArray());
        Assert.IsTrue(NativeRuntime.FileDefinesVersion(with, "GLIBCXX_3.4.32"));
        Assert.IsFalse(NativeRuntime.FileDefinesVersion(without, "GLIBCXX_3.4.32"), "3.4.321 is another version");
        // libtorch loads in this test process (the build applied the fix where needed).
        NativeRuntime.EnsureLoaded();
    }
}
