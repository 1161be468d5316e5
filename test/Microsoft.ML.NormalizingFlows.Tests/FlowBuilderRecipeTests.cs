using Microsoft.ML.NormalizingFlows.Persistence;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>A FlowBuilder flow records its calls in its spec, so it saves, loads and rebuilds like a preset.</summary>
[TestClass]
public sealed class FlowBuilderRecipeTests
{
    /// <summary>Every recordable builder call, in d = 4, on the given base.</summary>
    private static FlowDistribution EveryStep(BaseDistribution? baseDistribution, long seed = 5)
    {
        var builder = new FlowBuilder(4, seed);
        if (baseDistribution is not null) builder.WithBase(baseDistribution);
        return builder
            .ActNorm()
            .AffineCoupling(hiddenWidth: 8, logScaleClamp: 2.5)
            .SplineCoupling(builder.RandomMask(), bins: 5, bound: 4, hiddenWidth: 8, residualBlocks: 2)
            .RandomPermutation()
            .Iaf(hiddenWidth: 8)
            .LULinear()
            .Maf(hiddenWidth: 8, identityInit: false)
            .ReversePermutation()
            .SplineAutoregressive(AutoregressiveDirection.Masked, bins: 3, bound: 3, hiddenWidth: 8)
            .Planar(3)
            .Radial(2)
            .Build();
    }

    private static byte[] Save(FlowDistribution q)
    {
        using var stream = new MemoryStream();
        FlowSerializer.Save(q, stream);
        return stream.ToArray();
    }

    private static float[] DrawsAndLogProb(FlowDistribution q)
    {
        using var noGrad = torch.no_grad();
        var (z, logQ) = q.Sample(40, new Generator(11));
        var x = torch.randn(10, 4, generator: new Generator(12));
        return z.flatten().data<float>().Concat(logQ.data<float>()).Concat(q.LogProb(x).data<float>()).ToArray();
    }

    [TestMethod]
    [DataRow("normal")]
    [DataRow("diag-normal")]
    [DataRow("student-t-fixed")]
    [DataRow("student-t-learned")]
    public void TrainedBuiltFlowRoundTripsThroughTheSerializerBitForBit(string baseName)
    {
        BaseDistribution? b = baseName switch
        {
            "diag-normal" => new DiagonalNormal(4),
            "student-t-fixed" => new StudentT(4, 7.5, learnable: false),
            "student-t-learned" => new StudentT(4, 4.0),
            _ => null,
        };
        var q = EveryStep(b);
        Assert.IsNotNull(q.Spec);
        Assert.AreEqual(FlowBuilder.CustomPreset, q.Spec.Preset);
        Assert.AreEqual(11, q.Spec.Layers);
        // Train a little: ActNorm initializes from data, every weight moves away from its initial value.
        var target = Target.FromDelegate("gauss4", 4, z => -0.5 * (z - 1).square().sum(1));
        VariationalTrainer.Fit(q, target, new TrainerOptions { Iterations = 20, BatchSize = 64, LearningRate = 1e-2 });
        var loaded = FlowSerializer.Load(new MemoryStream(Save(q)));
        q.eval();
        CollectionAssert.AreEqual(DrawsAndLogProb(q), DrawsAndLogProb(loaded));
        Assert.AreEqual(q.Base.GetType(), loaded.Base.GetType());
        Assert.AreEqual(System.Text.Json.JsonSerializer.Serialize(q.Spec), System.Text.Json.JsonSerializer.Serialize(loaded.Spec));
    }

    [TestMethod]
    public void RecipeWritesMasksAndArgumentsAndIsTheSameForTheSameCalls()
    {
        var spec = EveryStep(null).Spec!;
        CollectionAssert.AreEqual(
            new[] { "actnorm", "affine-coupling", "spline-coupling", "random-permutation", "iaf", "lu-linear", "maf", "reverse-permutation",
                    "spline-autoregressive", "planar", "radial" },
            spec.Steps!.Select(s => s.Kind).ToArray());
        Assert.AreEqual("1100", spec.Steps![1].Arguments!["mask"], "first default mask: the first half kept");
        Assert.AreEqual("2.5", spec.Steps[1].Arguments!["clamp"]);
        Assert.AreEqual("2", spec.Steps[2].Arguments!["blocks"]);
        Assert.AreEqual("maf", spec.Steps[8].Arguments!["direction"]);
        Assert.AreEqual("false", spec.Steps[6].Arguments!["identity-init"]);
        Assert.AreEqual(System.Text.Json.JsonSerializer.Serialize(spec), System.Text.Json.JsonSerializer.Serialize(EveryStep(null).Spec));
        // The replayed flow has the same architecture: the original's state loads into it and gives the same flow.
        var rebuilt = FlowFactory.Create(spec);
        var original = EveryStep(null);
        CollectionAssert.AreEqual(original.named_parameters().Select(p => (p.name, p.parameter.numel())).ToArray(),
            rebuilt.named_parameters().Select(p => (p.name, p.parameter.numel())).ToArray());
        rebuilt.load_state_dict(original.state_dict());
        original.eval();
        rebuilt.eval();
        CollectionAssert.AreEqual(DrawsAndLogProb(original), DrawsAndLogProb(rebuilt));
    }

    [TestMethod]
    public void OutsideTransformOrUnlistedBaseLeavesNoSpecAndSaveSaysWhy()
    {
        var withOutsideStep = new FlowBuilder(2).ActNorm().Add(new PlanarFlow(2, 2)).Build();
        var withUnlistedBase = new FlowBuilder(2).WithBase(new UnlistedBase(2)).ActNorm().Build();
        foreach (var q in new[] { withOutsideStep, withUnlistedBase })
        {
            Assert.IsNull(q.Spec);
            var e = Assert.ThrowsExactly<InvalidOperationException>(() => Save(q));
            StringAssert.Contains(e.Message, "FlowBuilder.Add");
        }
    }

    /// <summary>A base the presets' settings cannot describe (N(0, I) under another name).</summary>
    private sealed class UnlistedBase(int d) : BaseDistribution(nameof(UnlistedBase), d)
    {
        private readonly StandardNormal inner = new(d);
        public override (Tensor Sample, Tensor LogProb) SampleFromNoise(Tensor noise) => inner.SampleFromNoise(noise);
        public override Tensor LogProb(Tensor z) => inner.LogProb(z);
    }

    [TestMethod]
    public void MalformedRecipesAreRejectedNamingTheStep()
    {
        var good = new FlowBuilder(2, 1).AffineCoupling().Planar(2).Build().Spec!;
        FlowStep coupling = good.Steps![0];
        Dictionary<string, string> With(string key, string? value)
        {
            var a = new Dictionary<string, string>(coupling.Arguments!);
            if (value is null) a.Remove(key); else a[key] = value;
            return a;
        }
        var cases = new (FlowSpec Spec, string Expected)[]
        {
            (good with { Steps = new[] { new FlowStep("warp-drive"), good.Steps[1] } }, "unknown kind 'warp-drive'"),
            (good with { Steps = new[] { coupling with { Arguments = With("hidden", null) }, good.Steps[1] } }, "lacks the argument 'hidden'"),
            (good with { Steps = new[] { coupling with { Arguments = With("mask", "101") }, good.Steps[1] } }, "mask = '101'"),
            (good with { Steps = new[] { coupling with { Arguments = With("colour", "red") }, good.Steps[1] } }, "unknown argument(s): colour"),
            (good with { Steps = new[] { coupling with { Arguments = With("identity-init", "yes") }, good.Steps[1] } }, "true or false"),
            (good with { Layers = 3 }, "says 3 steps but lists 2"),
            (good with { Steps = null }, "must list its builder steps"),
            (good with { Settings = new Dictionary<string, string> { ["base"] = "cauchy" } }, "Flow setting 'base' = 'cauchy' must be one of: normal, diag-normal, full-rank, student-t"),
            (new FlowSpec("planar", 2, 2, 0, null, good.Steps), "takes no builder steps"),
        };
        foreach (var (spec, expected) in cases)
        {
            var e = Assert.ThrowsExactly<ArgumentException>(() => FlowFactory.Create(spec), expected);
            StringAssert.Contains(e.Message, expected);
        }
        // Through a file, the same defect is an InvalidDataException that says the flow cannot be rebuilt.
        var q = new FlowBuilder(2, 1).AffineCoupling().Planar(2).Build();
        var bytes = Save(q);
        byte[] kind = "\"planar\""u8.ToArray();
        int at = bytes.AsSpan().IndexOf(kind);
        Assert.IsTrue(at > 0, "the step kind is in the description");
        "\"plan_r\""u8.CopyTo(bytes.AsSpan(at)); // same length: the layout stays valid
        var body = bytes[..^32];
        var resealed = body.Concat(System.Security.Cryptography.SHA256.HashData(body)).ToArray();
        var fileError = Assert.ThrowsExactly<InvalidDataException>(() => FlowSerializer.Load(new MemoryStream(resealed)));
        StringAssert.Contains(fileError.Message, "cannot be rebuilt");
        StringAssert.Contains(fileError.Message, "unknown kind 'plan_r'");
    }
}
