using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Diagnostics;
using Microsoft.ML.NormalizingFlows.MLNet;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>Issue 11's ML.NET reproductions: each failed before the fix.</summary>
[TestClass]
public sealed class MLNetTrustTests
{
    public TestContext TestContext { get; set; } = null!;

    private static NormalizingFlowEstimator.Options Quick(int iterations = 300) =>
        new() { Flow = "planar", Layers = 4, Iterations = iterations, BatchSize = 64, LearningRate = 0.01, Seed = 7, BlockSize = 256, ReportEvery = 50 };

    /// <summary>N(0, I) but NaN for z1 &gt; 1.5: about 7 % of the initial draws.</summary>
    private static Target NanOnTheRight() =>
        Target.FromDelegate("nan-beyond-1.5", 2, z => (1.5 - z[.., 0]).sqrt().log() - 0.5 * z.square().sum(1));

    private sealed class Point { public float X { get; set; } public float Y { get; set; } }

    [TestMethod]
    public void TheFullTrainerIsReachableThroughTheEstimator()
    {
        var ml = new MLContext(seed: 1);
        // Before: the plain ELBO was all ML.NET could use, and this target diverged.
        Assert.ThrowsExactly<TrainingDivergedException>(() => ml.Transforms.NormalizingFlow(NanOnTheRight(), Quick()).Fit(ml.Data.CreateEmptyRows(0)));
        var options = Quick();
        options.Objective = new ImportanceWeightedElboObjective(1); // drops the non-finite draws
        options.GradientClipNorm = 10;
        options.Schedule = LearningRateSchedule.Cosine();
        options.WarmupIterations = 20;
        options.ConvergenceWindow = 25;
        var model = ml.Transforms.NormalizingFlow(NanOnTheRight(), options).Fit(ml.Data.CreateEmptyRows(0));
        Assert.AreEqual(FitStatus.Completed, model.TrainingResult!.Status);
        Assert.IsTrue(model.TrainingResult.NonFiniteSamples > 0);
        // Early stopping and the divergence switch reach the trainer too.
        var early = Quick(5_000);
        early.EarlyStoppingPatience = 2;
        early.EarlyStoppingTolerance = 10;
        early.ConvergenceWindow = 50;
        var stopped = ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), early).Fit(ml.Data.CreateEmptyRows(0));
        Assert.AreEqual(FitStatus.StoppedEarly, stopped.TrainingResult!.Status);
        var returned = Quick();
        returned.ThrowOnDivergence = false;
        returned.MaxConsecutiveNonFiniteSteps = 3;
        var diverged = ml.Transforms.NormalizingFlow(NanOnTheRight(), returned).Fit(ml.Data.CreateEmptyRows(0));
        Assert.AreEqual(FitStatus.Diverged, diverged.TrainingResult!.Status);
        Assert.AreEqual(FitVerdict.NotReliable, diverged.FitReport!.Verdict);
        // Bad settings name themselves.
        var bad = Quick();
        bad.GradientClipNorm = -1;
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), bad));
        Assert.AreEqual("GradientClipNorm", e.ParamName);
    }

    [TestMethod]
    public void TheFitReportIsKeptInTheSavedModel()
    {
        var ml = new MLContext(seed: 1);
        var options = Quick();
        options.ReportSamples = 2_000;
        var model = ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), options).Fit(ml.Data.CreateEmptyRows(0));
        var report = model.FitReport!;
        TestContext.WriteLine(report.Text);
        Assert.AreEqual(2_000, report.Samples);
        Assert.AreEqual(2, report.ReplicateParetoK.Count);
        using var stream = new MemoryStream();
        ml.Model.Save(model, ml.Data.CreateEmptyRows(0).Schema, stream);
        stream.Position = 0;
        var loaded = NormalizingFlowTransformer.FindAll(ml.Model.Load(stream, out _)).Single();
        Assert.AreEqual(report, loaded.FitReport! with { Reasons = report.Reasons, ReplicateParetoK = report.ReplicateParetoK });
        CollectionAssert.AreEqual(report.Reasons.ToArray(), loaded.FitReport!.Reasons.ToArray());
        Assert.AreEqual(report.Text, loaded.FitReport.Text);
        StringAssert.Contains(loaded.FitReport.Text, "verdict");
        // Skipping the report is a setting.
        options.ReportSamples = 0;
        Assert.IsNull(ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), options).Fit(ml.Data.CreateEmptyRows(0)).FitReport);
    }

    [TestMethod]
    public void NormalizedImportanceWeightsAreAnOutputColumn()
    {
        var ml = new MLContext(seed: 1);
        var options = Quick();
        options.WeightColumnName = "Weight";
        var model = ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), options).Fit(ml.Data.CreateEmptyRows(0));
        var output = model.Generate(1_024); // four blocks of 256
        var weights = output.GetColumn<float>("Weight").ToArray();
        var logWeights = output.GetColumn<float>("LogWeight").ToArray();
        Assert.IsTrue(weights.All(w => w >= 0 && float.IsFinite(w)));
        for (int b = 0; b < 4; b++) Assert.AreEqual(1.0, weights.Skip(256 * b).Take(256).Average(), 1e-4, $"block {b} averages 1");
        // Larger log weight, larger weight (within a block, up to the smoothing of ties in the tail).
        int hi = Array.IndexOf(logWeights, logWeights.Take(256).Max()), lo = Array.IndexOf(logWeights, logWeights.Take(256).Min());
        Assert.IsTrue(weights[hi] > weights[lo]);
        using var stream = new MemoryStream();
        ml.Model.Save(model, ml.Data.CreateEmptyRows(0).Schema, stream);
        stream.Position = 0;
        var loaded = NormalizingFlowTransformer.FindAll(ml.Model.Load(stream, out _)).Single();
        CollectionAssert.AreEqual(weights, loaded.Generate(1_024).GetColumn<float>("Weight").ToArray());
        Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.NormalizingFlowDensity(new NormalizingFlowEstimator.Options { WeightColumnName = "Weight" }));
    }

    [TestMethod]
    public void FittingLeavesTheProcessThreadCountAsItWas()
    {
        var ml = new MLContext(seed: 1);
        int before = torch.get_num_threads();
        var options = Quick(20);
        options.Threads = before + 1;
        ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), options).Fit(ml.Data.CreateEmptyRows(0));
        Assert.AreEqual(before, torch.get_num_threads());
        var data = ml.Data.LoadFromEnumerable(Enumerable.Range(0, 50).Select(i => new Point { X = i % 7, Y = i % 5 }));
        var density = new NormalizingFlowEstimator.Options { Flow = "full-rank", Iterations = 10, Seed = 1, Threads = before + 1 };
        ml.Transforms.Concatenate("Features", "X", "Y").Append(ml.Transforms.NormalizingFlowDensity(density)).Fit(data);
        Assert.AreEqual(before, torch.get_num_threads());
    }

    [TestMethod]
    public void ADensityModelScoresRowsAndItsDrawsCarryTheInputsSlotNames()
    {
        var ml = new MLContext(seed: 1);
        var rows = Enumerable.Range(0, 200).Select(i => new Point { X = (float)Math.Sin(i), Y = 0.5f * i % 3 }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.Concatenate("Features", "X", "Y")
            .Append(ml.Transforms.NormalizingFlowDensity(new NormalizingFlowEstimator.Options { Flow = "full-rank", Iterations = 200, Seed = 1 }));
        var model = pipeline.Fit(data);
        // Transform scores the rows (before: it appended an unrelated synthetic draw per row).
        var scored = model.Transform(data);
        Assert.IsNull(scored.Schema.GetColumnOrNull("Sample"));
        var logQ = scored.GetColumn<float>("LogQ").ToArray();
        Assert.AreEqual(200, logQ.Length);
        Assert.IsTrue(logQ.All(float.IsFinite));
        // Generation keeps the input's slot names (before: none).
        var flow = NormalizingFlowTransformer.FindAll(model).Single();
        var sample = flow.Generate(5).Schema["Sample"];
        VBuffer<ReadOnlyMemory<char>> names = default;
        sample.GetSlotNames(ref names);
        CollectionAssert.AreEqual(new[] { "X", "Y" }, names.DenseValues().Select(n => n.ToString()).ToArray());
        // The scoring pipeline saves and loads, and scores the same.
        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;
        var loaded = ml.Model.Load(stream, out _);
        CollectionAssert.AreEqual(logQ, loaded.Transform(data).GetColumn<float>("LogQ").ToArray());
        var loadedSample = NormalizingFlowTransformer.FindAll(loaded).Single().Generate(5).Schema["Sample"];
        loadedSample.GetSlotNames(ref names);
        Assert.AreEqual("Y", names.GetItemOrDefault(1).ToString());
    }

    [TestMethod]
    public void HugeBatchAndBlockSizesAreArgumentErrorsAndBlocksAreClippedToTheRowsAskedFor()
    {
        var ml = new MLContext(seed: 1);
        var batch = Quick();
        batch.BatchSize = int.MaxValue; // before: ExternalException "DefaultCPUAllocator: can't allocate memory"
        Assert.AreEqual("BatchSize", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), batch)).ParamName);
        var wide = new TrainerOptions { BatchSize = 10_000_000, Iterations = 1 };
        Assert.AreEqual("BatchSize", Assert.ThrowsExactly<ArgumentOutOfRangeException>(
            () => VariationalTrainer.Fit(FlowFactory.Create("planar", 10, 1), Target.FromDelegate("n", 10, z => z.sum(1)), wide)).ParamName);
        var block = Quick();
        block.BlockSize = int.MaxValue;
        Assert.AreEqual("BlockSize", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), block)).ParamName);
        // 20,000,000 rows per block is allowed for d = 2, but Generate(3) computes 3 draws, not 20 million (before: 11.6 GB).
        var big = Quick(10);
        big.BlockSize = 20_000_000;
        big.ReportSamples = 0;
        var model = ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), big).Fit(ml.Data.CreateEmptyRows(0));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var three = model.Generate(3).GetColumn<float[]>("Sample").ToArray();
        Assert.AreEqual(3, three.Length);
        Assert.IsTrue(clock.Elapsed < TimeSpan.FromSeconds(5), $"{clock.Elapsed}");
        // The same rows every time for the same row count.
        CollectionAssert.AreEqual(three[2], model.Generate(3).GetColumn<float[]>("Sample").ToArray()[2]);
    }
}
