// Tests share TorchSharp's process-wide state (thread count, default dtype); run them one at a time.
[assembly: Microsoft.VisualStudio.TestTools.UnitTesting.DoNotParallelize]

namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public static class AssemblySettings
{
    /// <summary>
    /// One intra-op thread: the tests' tensors are tiny, and libtorch's OpenMP pool on a busy 2-core
    /// machine made small matrix products ~50× slower (measured: full-rank step 27 ms vs 0.6 ms).
    /// </summary>
    [AssemblyInitialize]
    public static void UseOneTorchThread(TestContext _) => TorchSharp.torch.set_num_threads(1);
}
