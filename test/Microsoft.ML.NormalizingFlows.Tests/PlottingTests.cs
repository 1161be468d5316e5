using Microsoft.ML.NormalizingFlows.Plotting;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class PlottingTests : TempDirectoryTest
{
    [TestMethod]
    public void ShortFit_WritesThreeNonEmptyPngsOfTheRequestedSizes()
    {
        var target = TargetGallery.Create("ring");
        var q = FlowFactory.Create("planar", 2, 4, seed: 0);
        var fit = VariationalTrainer.Fit(q, target, new TrainerOptions { Iterations = 100, BatchSize = 64, LearningRate = 1e-2 });

        var paths = FitPictures.WriteAll(TempDirectory, q, target, fit, "planar K=4", resolution: 60, sampleCount: 300);

        CollectionAssert.AreEqual(new[] { FitPictures.DensityFile, FitPictures.SamplesFile, FitPictures.TrainingFile }, paths.Select(Path.GetFileName).ToArray());
        var expectedSizes = new[] { (1400, 640), (800, 800), (1000, 600) };
        for (int i = 0; i < paths.Count; i++)
        {
            Assert.IsTrue(new FileInfo(paths[i]).Length > 5_000, $"{paths[i]} is suspiciously small.");
            Assert.AreEqual(expectedSizes[i], PngTestFiles.ReadSize(paths[i]), paths[i]);
        }
    }

    [TestMethod]
    public void FrameRecorder_WritesNumberedFramesEveryNIterations()
    {
        var target = TargetGallery.Create("ring");
        var q = FlowFactory.Create("radial", 2, 2, seed: 1);
        var background = DensityGrid.ForTarget(target, FitPictures.PlotBox(target), 40);
        var frames = new FrameRecorder(q, background, Path.Combine(TempDirectory, "frames"), every: 20, "radial K=2", samples: 100, width: 300, height: 200);

        VariationalTrainer.Fit(q, target, new TrainerOptions { Iterations = 60, BatchSize = 16, ReportEvery = 10 }, frames);

        Assert.AreEqual(3, frames.Frames.Count);
        for (int i = 1; i <= 3; i++)
        {
            var path = Path.Combine(TempDirectory, "frames", $"frame_{i:D5}.png");
            Assert.IsTrue(File.Exists(path), path);
            Assert.AreEqual((300, 200), PngTestFiles.ReadSize(path));
        }
        Assert.IsFalse(File.Exists(Path.Combine(TempDirectory, "frames", "frame_00004.png")));
    }

    [TestMethod]
    public void TargetGrid_IsNormalizedAndHasItsFirstRowAtTheTop()
    {
        // A unit Gaussian at (0, 3): the mass is in the upper half, so the top rows must hold it.
        var target = Target.FromDelegate("bump", 2,
            z => -0.5 * (z[.., 0].square() + (z[.., 1] - 3).square()) - Math.Log(2 * Math.PI), logNormalizer: 0.0);
        var box = new Box(-8, 8, -8, 8);
        var grid = DensityGrid.ForTarget(target, box, 100);
        double cellArea = box.Width * box.Height / (100.0 * 100.0);
        double total = 0, upper = 0;
        for (int r = 0; r < 100; r++)
            for (int c = 0; c < 100; c++)
            {
                total += grid.Values[r, c] * cellArea;
                if (r < 50) upper += grid.Values[r, c] * cellArea;
            }
        Assert.AreEqual(1.0, total, 1e-3);
        Assert.IsTrue(upper > 0.99, $"Only {upper:F3} of the mass is in the top half of the grid: rows are flipped.");
        Assert.AreEqual(1 / (2 * Math.PI), grid.Max, 0.01, "The peak density of N((0,3), I).");
        StringAssert.Contains(grid.Method, "exact");
    }

    [TestMethod]
    public void FlowGrid_IsTheExactDensityWhenQCanEvaluateIt()
    {
        var q = FlowFactory.Create("mean-field", 2, 1, seed: 0); // initialized at N(0, I)
        var grid = DensityGrid.ForFlow(q, new Box(-1, 1, -1, 1), 2);
        // Cell centers (±0.5, ±0.5): density exp(−0.25)/(2π) each.
        foreach (var v in grid.Values) Assert.AreEqual(Math.Exp(-0.25) / (2 * Math.PI), v, 1e-5);
        Assert.AreEqual("exact log q", grid.Method);
    }

    [TestMethod]
    public void Histogram_IsADensityAndDropsPointsOutsideTheBox()
    {
        // 4 points in the top-left cell, 4 in the bottom-right, 2 outside: density = count / (N × cell area).
        var points = torch.tensor(new double[] { -0.5, 0.5, -0.6, 0.6, -0.4, 0.9, -0.1, 0.1, 0.5, -0.5, 0.6, -0.6, 0.4, -0.9, 0.1, -0.1, 5, 5, -5, 0 }).reshape(10, 2);
        var grid = DensityGrid.Histogram(points, new Box(-1, 1, -1, 1), 2, "histogram");
        Assert.AreEqual(0.4, grid.Values[0, 0], 1e-12);
        Assert.AreEqual(0.4, grid.Values[1, 1], 1e-12);
        Assert.AreEqual(0.0, grid.Values[0, 1]);
        Assert.AreEqual(0.0, grid.Values[1, 0]);
    }

    [TestMethod]
    public void MovingAverage_SkipsNaNInsteadOfSpreadingIt()
    {
        var smoothed = TrainingCurvePlot.MovingAverage([1, 3, double.NaN, 5, 7], 2);
        CollectionAssert.AreEqual(new[] { 1.0, 2.0, 3.0, 5.0, 6.0 }, smoothed);
    }

    [TestMethod]
    public void Comparison_RejectsGridsOverDifferentBoxes()
    {
        var a = new DensityGrid(new double[2, 2], new Box(-1, 1, -1, 1), "a");
        var b = new DensityGrid(new double[2, 2], new Box(-2, 2, -2, 2), "b");
        var e = Assert.ThrowsExactly<ArgumentException>(() => DensityComparisonPlot.Save(Path.Combine(TempDirectory, "x.png"), a, b, "t", "f"));
        StringAssert.Contains(e.Message, "same box");
    }

    [TestMethod]
    public void IntervalComparisonWritesAPictureAndRefusesNoItems()
    {
        var directory = PngTestFiles.NewTempDirectory();
        try
        {
            var path = Path.Combine(directory, "intervals.png");
            var items = Enumerable.Range(0, 5).Select(i => new Microsoft.ML.NormalizingFlows.Plotting.IntervalComparisonPlot.Item(
                $"s{i}", 0.1 * i, 0.1 * i - 0.05, 0.1 * i + 0.05, 0.1 * i + 0.01, 0.1 * i - 0.04, 0.1 * i + 0.06)).ToArray();
            Microsoft.ML.NormalizingFlows.Plotting.IntervalComparisonPlot.Save(path, items, "test", "reference", "fit", "value");
            Assert.AreEqual((1400, 600), PngTestFiles.ReadSize(path));
            Assert.ThrowsExactly<ArgumentException>(() => Microsoft.ML.NormalizingFlows.Plotting.IntervalComparisonPlot.Save(path, Array.Empty<Microsoft.ML.NormalizingFlows.Plotting.IntervalComparisonPlot.Item>(), "t", "r", "f", "v"));
        }
        finally { Directory.Delete(directory, recursive: true); }
    }
}
