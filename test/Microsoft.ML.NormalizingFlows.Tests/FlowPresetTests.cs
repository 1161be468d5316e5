using Microsoft.ML.NormalizingFlows.Persistence;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>
/// Presets by name: they build for every dimension they allow, rebuild from their <see cref="FlowSpec"/>,
/// have the documented default structure, reject bad names and settings with an
/// <see cref="ArgumentException"/> that names them, and sample with a log q that equals
/// <see cref="FlowDistribution.LogProb"/> at the samples.
/// </summary>
[TestClass]
public sealed class FlowPresetTests
{
    private static readonly string[] Layered = { "realnvp", "nsf-coupling", "iaf", "maf", "nsf-autoregressive" };
    private static readonly string[] Coupling = { "realnvp", "nsf-coupling" };

    /// <summary>Small conditioners keep the tests fast; presets without settings get none.</summary>
    private static Dictionary<string, string>? Small(string preset, params (string Key, string Value)[] extra) =>
        Layered.Contains(preset) ? extra.Append(("hidden", "8")).ToDictionary(s => s.Item1, s => s.Item2) : null;

    public static IEnumerable<object[]> Presets() => FlowFactory.Names.Order().Select(n => new object[] { n });

    /// <summary>Random, non-identity weights; ActNorm initialized from a training-mode draw; then eval mode.</summary>
    private static FlowDistribution Trained(FlowDistribution q, long seed)
    {
        Perturb(q, 0.2, seed);
        q.train();
        using (torch.no_grad()) q.Sample(64, new Generator((ulong)seed));
        q.eval();
        return q;
    }

    private static string Architecture(nn.Module m) => string.Join("; ",
        m.named_parameters().Select(p => $"{p.name}:{string.Join("x", p.parameter.shape)}")
            .Concat(m.named_buffers().Select(b => $"{b.name}:{string.Join("x", b.buffer.shape)}:{b.buffer.dtype}")));

    [TestMethod]
    [DynamicData(nameof(Presets))]
    public void EveryPresetBuildsAndRebuildsFromItsSpec(string preset)
    {
        foreach (int d in new[] { 1, 2, 5 })
        {
            if (d == 1 && Coupling.Contains(preset))
            {
                var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => FlowFactory.Create(preset, 1, 2, settings: Small(preset)));
                Assert.AreEqual("dimension", e.ParamName);
                StringAssert.Contains(e.Message, $"'{preset}'");
                StringAssert.Contains(e.Message, "d ≥ 2");
                continue;
            }
            string label = $"{preset} d={d}";
            var q = FlowFactory.Create(preset, d, 2, seed: 11, Small(preset));
            Assert.AreEqual(new FlowSpec(preset, d, 2, 11, q.Spec!.Settings), q.Spec, label);
            Assert.AreEqual(d, q.Dimension, label);

            // The same spec gives the same architecture and, from the same seed, the same initial weights.
            var fresh = FlowFactory.Create(q.Spec);
            Assert.AreEqual(Architecture(q), Architecture(fresh), label);
            foreach (var (a, b) in q.parameters().Zip(fresh.parameters())) AssertClose(a, b, 0, label + " initial weights");

            // A trained state loads into the rebuilt flow and gives identical draws and log-probs.
            Trained(q, 5);
            var state = new MemoryStream();
            q.save(state); // closes the stream; its bytes stay readable
            var rebuilt = FlowFactory.Create(q.Spec);
            rebuilt.load(new MemoryStream(state.ToArray()));
            rebuilt.eval();
            using var noGrad = torch.no_grad();
            var (z, logQ) = q.Sample(32, new Generator(2));
            var (z2, logQ2) = rebuilt.Sample(32, new Generator(2));
            AssertClose(z, z2, 0, label + " draws");
            AssertClose(logQ, logQ2, 0, label + " log q of draws");
            if (q.CanEvaluateLogProb) AssertClose(q.LogProb(z), rebuilt.LogProb(z), 0, label + " LogProb");

            // The same through FlowSerializer (spec as JSON + state dict).
            var file = new MemoryStream();
            FlowSerializer.Save(q, file);
            file.Position = 0;
            var loaded = FlowSerializer.Load(file);
            AssertClose(logQ, loaded.Sample(32, new Generator(2)).LogProb, 0, label + " log q of draws after FlowSerializer");
            if (q.CanEvaluateLogProb) AssertClose(q.LogProb(z), loaded.LogProb(z), 0, label + " LogProb after FlowSerializer");
        }
    }

    public static IEnumerable<object[]> Invertible()
    {
        foreach (var name in FlowFactory.Names.Order()) yield return new object[] { name, "" };
        yield return new object[] { "realnvp", "mask=random,permutation=lu,base=student-t,learn-dof=false,dof=3" };
        yield return new object[] { "nsf-coupling", "permutation=random,base=diag-normal,bins=3,bound=2,blocks=2" };
        yield return new object[] { "nsf-autoregressive", "direction=maf,base=student-t" };
        yield return new object[] { "iaf", "actnorm=false,identity-init=false,clamp=1" };
    }

    private static Dictionary<string, string> Parse(string settings) =>
        settings.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(s => s.Split('=')).ToDictionary(kv => kv[0], kv => kv[1]);

    /// <summary>log q returned by Sample (forward pass) equals LogProb (inverse pass) at the draws, in float64.</summary>
    [TestMethod]
    [DynamicData(nameof(Invertible))]
    public void SampledLogQEqualsLogProbOfTheDraws(string preset, string settings)
    {
        var extra = Parse(settings).Select(kv => (kv.Key, kv.Value)).ToArray();
        var q = FlowFactory.Create(preset, 4, 3, seed: 2, Layered.Contains(preset) ? Small(preset, extra) : null);
        Assert.IsTrue(q.CanEvaluateLogProb, $"{preset} has an inverse");
        q.to(ScalarType.Float64);
        Trained(q, 7);
        using var noGrad = torch.no_grad();
        var (z, logQ) = q.Sample(200, new Generator(4));
        AssertFinite(logQ, preset);
        AssertClose(logQ, q.LogProb(z), 1e-8, $"{preset} {settings}: log q");
    }

    [TestMethod]
    public void CustomBuilderStackSamplesAndEvaluatesConsistently()
    {
        // ActNorm → spline coupling → LU → IAF on a Student-t base, in training mode (ActNorm initializes on the first draw).
        var q = new FlowBuilder(4, seed: 3).WithBase(new StudentT(4, 6))
            .ActNorm().SplineCoupling(bins: 5, bound: 3, hiddenWidth: 8).LULinear().Iaf(hiddenWidth: 8)
            .RandomPermutation().SplineAutoregressive(AutoregressiveDirection.Masked, hiddenWidth: 8).Build();
        q.to(ScalarType.Float64);
        Perturb(q, 0.2, 9);
        var (z, logQ) = q.Sample(300, new Generator(1));
        Assert.IsTrue(q.modules().OfType<ActNorm>().Single().IsInitialized);
        AssertClose(logQ.detach(), q.LogProb(z).detach(), 1e-8, "custom stack: log q");
        // Differentiable end to end.
        (logQ.mean() + z.square().mean()).backward();
        foreach (var (name, p) in q.named_parameters()) Assert.IsNotNull(p.grad, $"{name} gets a gradient");
    }

    [TestMethod]
    public void PresetsHaveTheDocumentedDefaultStructure()
    {
        static IReadOnlyList<FlowTransform> Steps(FlowDistribution q) => ((CompositeTransform)q.Transform!).Steps;

        var realnvp = Steps(FlowFactory.Create("realnvp", 4, 3));
        CollectionAssert.AreEqual(new[] { typeof(CouplingTransform), typeof(CouplingTransform), typeof(CouplingTransform), typeof(ActNorm) }, realnvp.Select(s => s.GetType()).ToArray());
        var masks = realnvp.Take(3).Cast<CouplingTransform>().Select(c => string.Concat(c.Mask.Select(m => m ? 'K' : 'T'))).ToArray();
        CollectionAssert.AreEqual(new[] { "KKTT", "TTKK", "KKTT" }, masks, "alternating halves");
        Assert.AreEqual(3.0, ((AffineMap)((CouplingTransform)realnvp[0]).Map).LogScaleClamp);
        // Width 64, one residual block, 2 kept → 2 transformed: (2·64 + 64) + 2·(64·64 + 64) + (64·4 + 4) per conditioner.
        Assert.AreEqual(192 + 8320 + 260, realnvp[0].parameters().Sum(p => p.numel()));

        var spline = (RationalQuadraticSplineMap)((CouplingTransform)Steps(FlowFactory.Create("nsf-coupling", 3, 2))[0]).Map;
        Assert.AreEqual((8, 5.0), (spline.Bins, spline.Bound));

        foreach (var (name, direction, map) in new[] { ("iaf", AutoregressiveDirection.Inverse, typeof(AffineMap)), ("maf", AutoregressiveDirection.Masked, typeof(AffineMap)),
                     ("nsf-autoregressive", AutoregressiveDirection.Inverse, typeof(RationalQuadraticSplineMap)) })
        {
            var steps = Steps(FlowFactory.Create(name, 3, 2));
            CollectionAssert.AreEqual(new[] { typeof(MaskedAutoregressiveTransform), typeof(PermutationTransform), typeof(MaskedAutoregressiveTransform), typeof(ActNorm) },
                steps.Select(s => s.GetType()).ToArray(), name);
            CollectionAssert.AreEqual(new[] { 2, 1, 0 }, ((PermutationTransform)steps[1]).Permutation.ToArray(), name + ": reverse between layers");
            Assert.AreEqual(direction, ((MaskedAutoregressiveTransform)steps[0]).Direction, name);
            Assert.AreEqual(map, ((MaskedAutoregressiveTransform)steps[0]).Map.GetType(), name);
            Assert.IsInstanceOfType<StandardNormal>(FlowFactory.Create(name, 3, 2).Base);
        }

        var custom = Steps(FlowFactory.Create("maf", 3, 2, settings: new Dictionary<string, string> { ["permutation"] = "lu", ["actnorm"] = "false", ["base"] = "student-t", ["dof"] = "4" }));
        CollectionAssert.AreEqual(new[] { typeof(MaskedAutoregressiveTransform), typeof(LUInvertibleLinear), typeof(MaskedAutoregressiveTransform) }, custom.Select(s => s.GetType()).ToArray());
        var t = (StudentT)FlowFactory.Create("iaf", 2, 1, settings: new Dictionary<string, string> { ["base"] = "student-t", ["dof"] = "4" }).Base;
        Assert.IsTrue(t.Learnable);
        AssertClose(torch.full(2, 4.0), t.DegreesOfFreedom.detach(), 1e-5, "dof");
    }

    [TestMethod]
    public void UnknownNamesAndBadSettingsAreRejectedNamingThem()
    {
        var unknown = Assert.ThrowsExactly<ArgumentException>(() => FlowFactory.Create("glow", 2, 2));
        Assert.AreEqual("name", unknown.ParamName);
        StringAssert.Contains(unknown.Message, "'glow'");
        StringAssert.Contains(unknown.Message, "realnvp");
        Assert.AreEqual("dimension", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => FlowFactory.Create("iaf", 0, 2)).ParamName);
        Assert.AreEqual("layers", Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => FlowFactory.Create("iaf", 2, 0)).ParamName);

        foreach (var (preset, key, value, says) in new[]
        {
            ("realnvp", "hiden", "8", "Unknown flow setting 'hiden'"),
            ("realnvp", "hidden", "0", "'hidden' = '0'"),
            ("realnvp", "hidden", "wide", "'hidden' = 'wide'"),
            ("realnvp", "blocks", "-1", "'blocks' = '-1'"),
            ("realnvp", "clamp", "-2", "'clamp' = '-2'"),
            ("realnvp", "clamp", "Infinity", "'clamp' = 'Infinity'"),
            ("nsf-coupling", "bins", "0", "'bins' = '0'"),
            ("nsf-coupling", "bins", "1000", "'bins' = '1000'"),
            ("nsf-coupling", "bound", "0", "'bound' = '0'"),
            ("realnvp", "mask", "checkerboard", "'mask' = 'checkerboard'"),
            ("iaf", "permutation", "shuffle", "'permutation' = 'shuffle'"),
            ("iaf", "actnorm", "maybe", "'actnorm' = 'maybe'"),
            ("iaf", "identity-init", "1", "'identity-init' = '1'"),
            ("nsf-autoregressive", "direction", "up", "'direction' = 'up'"),
            ("maf", "base", "cauchy", "'base' = 'cauchy'"),
            // Settings a preset would silently ignore are mistakes too.
            ("planar", "hidden", "8", "does not use the setting(s): hidden"),
            ("realnvp", "bins", "4", "does not use the setting(s): bins"),
            ("nsf-coupling", "clamp", "2", "does not use the setting(s): clamp"),
            ("iaf", "mask", "random", "does not use the setting(s): mask"),
            ("maf", "direction", "iaf", "does not use the setting(s): direction"),
            ("maf", "dof", "3", "does not use the setting(s): dof"), // dof without a Student-t base
        })
        {
            var e = Assert.ThrowsExactly<ArgumentException>(() => FlowFactory.Create(preset, 3, 2, settings: new Dictionary<string, string> { [key] = value }), $"{preset} {key}={value}");
            Assert.AreEqual("settings", e.ParamName, $"{preset} {key}={value}");
            StringAssert.Contains(e.Message, says);
        }
        var badDof = Assert.ThrowsExactly<ArgumentException>(() => FlowFactory.Create("maf", 3, 2, settings: new Dictionary<string, string> { ["base"] = "student-t", ["dof"] = "0" }));
        StringAssert.Contains(badDof.Message, "'dof' = '0'");
    }

    [TestMethod]
    public void PresetsTakeAFullRankBaseThatSavesAndLoads()
    {
        // Before: base = normal, diag-normal or student-t only.
        var q = FlowFactory.Create("realnvp", 3, 2, seed: 5, new Dictionary<string, string> { ["base"] = "full-rank", ["hidden"] = "8" });
        Assert.IsInstanceOfType<FullRankNormal>(q.Base);
        using var stream = new MemoryStream();
        Microsoft.ML.NormalizingFlows.Persistence.FlowSerializer.Save(q, stream);
        stream.Position = 0;
        var loaded = Microsoft.ML.NormalizingFlows.Persistence.FlowSerializer.Load(stream);
        Assert.IsInstanceOfType<FullRankNormal>(loaded.Base);
        q.eval(); // no ActNorm data-dependent initialization on the comparison's own points
        loaded.eval();
        using var noGrad = torch.no_grad();
        var z = torch.randn(4, 3, generator: new Generator(1));
        CollectionAssert.AreEqual(q.LogProb(z).data<float>().ToArray(), loaded.LogProb(z).data<float>().ToArray());
    }
}
