// Tests share TorchSharp's process-wide state (thread count, default dtype); run them one at a time.
[assembly: Microsoft.VisualStudio.TestTools.UnitTesting.DoNotParallelize]
