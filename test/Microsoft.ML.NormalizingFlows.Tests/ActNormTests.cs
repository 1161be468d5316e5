using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.MLNet;
using Microsoft.ML.NormalizingFlows.Persistence;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>
/// ActNorm's data-dependent initialization: the first training-mode batch standardizes the layer's
/// output; the initialized state (values and flag) survives saving, so a loaded layer never
/// re-initializes over trained values.
/// </summary>
[TestClass]
public sealed class ActNormTests
{
    /// <summary>A batch far from standardized: per-coordinate means (3, −7, 0.5) and sds (0.2, 5, 1).</summary>
    private static Tensor Skewed(int n, ulong seed, ScalarType dtype = ScalarType.Float32) =>
        (torch.randn(n, 3, generator: new Generator(seed)) * torch.tensor(new float[] { 0.2f, 5, 1 }) + torch.tensor(new float[] { 3, -7, 0.5f })).to(dtype);

    private static void AssertStandardized(Tensor y, string what)
    {
        AssertClose(torch.zeros(3), y.mean(new long[] { 0 }), 1e-5, $"{what}: mean per coordinate");
        AssertClose(torch.ones(3), y.std(0, unbiased: false), 1e-4, $"{what}: sd per coordinate");
    }

    internal static ActNorm FindActNorm(nn.Module module) => module.modules().OfType<ActNorm>().Single();

    [TestMethod]
    [DataRow(false)]
    [DataRow(true)]
    public void FirstTrainingBatchStandardizesTheOutputInEitherDirection(bool inverseFirst)
    {
        var a = new ActNorm(3);
        Assert.IsFalse(a.IsInitialized);
        var batch = Skewed(500, 1);
        var (y, logDet) = inverseFirst ? a.Inverse(batch) : a.Forward(batch);
        Assert.IsTrue(a.IsInitialized);
        AssertStandardized(y, inverseFirst ? "inverse" : "forward");
        // log|det J| agrees with the scaling it applied: Σ log(1/sd) in the standardizing direction.
        double expectedLogDet = -batch.std(0, unbiased: false).log().sum().ToDouble();
        Assert.AreEqual(expectedLogDet, logDet[0].ToDouble(), 1e-4);
        // Later batches do not re-initialize: a shifted batch comes out shifted.
        var before = (a.LogScale.clone(), a.Bias.clone());
        var second = Skewed(500, 2) + 10;
        var y2 = inverseFirst ? a.Inverse(second).Output : a.Forward(second).Output;
        AssertClose(before.Item1, a.LogScale, 0, "log-scale after a second batch");
        AssertClose(before.Item2, a.Bias, 0, "bias after a second batch");
        Assert.IsTrue(y2.mean().ToDouble() > 1, "the second batch must not be standardized again");
    }

    [TestMethod]
    public void NoInitializationInEvalModeOrFromASingleSample()
    {
        var a = new ActNorm(3);
        a.eval();
        var x = Skewed(100, 3);
        AssertClose(x, a.Forward(x).Output, 0, "eval mode: identity");
        Assert.IsFalse(a.IsInitialized);
        a.train();
        AssertClose(x[..1], a.Forward(x[..1]).Output, 0, "batch of one: identity (no variance to estimate)");
        Assert.IsFalse(a.IsInitialized);
        a.Forward(x);
        Assert.IsTrue(a.IsInitialized);
    }

    [TestMethod]
    public void InitializedStateSurvivesAPrecisionChange()
    {
        var a = new ActNorm(3);
        a.Forward(Skewed(200, 4));
        var logScale = a.LogScale.to(ScalarType.Float64).clone();
        a.to(ScalarType.Float64);
        Assert.IsTrue(a.IsInitialized);
        a.Forward(Skewed(200, 5, ScalarType.Float64) * 3);
        AssertClose(logScale, a.LogScale, 0, "log-scale after .to(Float64) and another batch");
    }

    private static FlowDistribution InitializedRealNvp()
    {
        var q = FlowFactory.Create("realnvp", 3, 2, seed: 6, new Dictionary<string, string> { ["hidden"] = "8" });
        Perturb(q, 0.1, 7);
        q.train();
        q.LogProb(Skewed(256, 8)); // density direction: the final ActNorm sees the data first
        Assert.IsTrue(FindActNorm(q).IsInitialized);
        return q;
    }

    [TestMethod]
    public void InitializedStateSurvivesFlowSerializerAndALoadedFlowDoesNotReinitialize()
    {
        var q = InitializedRealNvp();
        var actNorm = FindActNorm(q);
        var probe = Skewed(64, 9) * 2 - 1;
        q.eval();
        var expected = q.LogProb(probe);

        using var stream = new MemoryStream();
        FlowSerializer.Save(q, stream);
        stream.Position = 0;
        var loaded = FlowSerializer.Load(stream);
        var loadedActNorm = FindActNorm(loaded);
        Assert.IsTrue(loadedActNorm.IsInitialized, "the 'initialized' flag is saved");
        AssertClose(actNorm.LogScale, loadedActNorm.LogScale, 0, "log-scale");
        AssertClose(actNorm.Bias, loadedActNorm.Bias, 0, "bias");

        // Even in training mode (e.g. to continue fitting), its first batch must not re-initialize it.
        loaded.train();
        var first = loaded.LogProb(probe);
        AssertClose(actNorm.LogScale, loadedActNorm.LogScale, 0, "log-scale after the loaded flow's first training batch");
        AssertClose(expected, first, 0, "log q of the loaded flow");
    }

    [TestMethod]
    public void InitializedStateSurvivesMLNetModelSaveAndLoad()
    {
        var ml = new MLContext(seed: 1);
        var rows = Skewed(400, 10).data<float>().ToArray();
        var data = new StreamedVectorView(400, 3, (i, j) => rows[i * 3 + j]);
        var model = ml.Transforms.NormalizingFlowDensity(new NormalizingFlowEstimator.Options
        {
            Flow = "realnvp", Layers = 2, Iterations = 5, Seed = 3, BlockSize = 100,
            FlowSettings = new() { ["hidden"] = "8" },
        }).Fit(data);
        var trained = FindActNorm(model.Flow);
        Assert.IsTrue(trained.IsInitialized, "fitting initializes ActNorm from the data");

        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        stream.Position = 0;
        var loaded = NormalizingFlowTransformer.FindAll(ml.Model.Load(stream, out _)).Single();
        var loadedActNorm = FindActNorm(loaded.Flow);
        Assert.IsTrue(loadedActNorm.IsInitialized);
        AssertClose(trained.LogScale, loadedActNorm.LogScale, 0, "log-scale");
        AssertClose(trained.Bias, loadedActNorm.Bias, 0, "bias");
        CollectionAssert.AreEqual(model.ScoreLogQ(data, "Features").GetColumn<float>("LogQ").ToArray(),
            loaded.ScoreLogQ(data, "Features").GetColumn<float>("LogQ").ToArray());

        loaded.Flow.train();
        using (torch.no_grad()) loaded.Flow.LogProb(Skewed(50, 11) * 4);
        loaded.Flow.eval();
        AssertClose(trained.LogScale, loadedActNorm.LogScale, 0, "log-scale after a training-mode batch on the loaded flow");
    }
}
