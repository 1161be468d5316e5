using Microsoft.ML.NormalizingFlows.Persistence;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class FlowSerializerTests
{
    private static float[] Draw(Distributions.FlowDistribution q, int n, ulong seed)
    {
        using var noGrad = torch.no_grad();
        var (z, logQ) = q.Sample(n, new Generator(seed));
        return z.to(ScalarType.Float32).flatten().data<float>().ToArray().Concat(logQ.to(ScalarType.Float32).data<float>().ToArray()).ToArray();
    }

    private static byte[] Save(Distributions.FlowDistribution q)
    {
        using var stream = new MemoryStream();
        FlowSerializer.Save(q, stream);
        return stream.ToArray();
    }

    [TestMethod]
    [DataRow("planar", false)]
    [DataRow("radial", false)]
    [DataRow("full-rank", false)]
    [DataRow("planar", true)]
    public void RoundTripGivesBitIdenticalSamples(string preset, bool float64)
    {
        var q = FlowFactory.Create(preset, 2, 4, seed: 3);
        VariationalTrainer.Fit(q, TargetGallery.Create("ring"), new TrainerOptions { Iterations = 30, BatchSize = 32, Precision = float64 ? Precision.Float64 : Precision.Float32 });
        var loaded = FlowSerializer.Load(new MemoryStream(Save(q)));
        Assert.AreEqual(q.Placement.DType, loaded.Placement.DType);
        CollectionAssert.AreEqual(Draw(q, 50, 9), Draw(loaded, 50, 9));
    }

    [TestMethod]
    public void RoundTripKeepsBaseFamilyAndStandardization()
    {
        var description = new FlowDescription(new FlowSpec("radial", 3, 2, 5), FlowDescription.DiagonalNormalBase, new[] { 1.0, -2, 3 }, new[] { 0.5, 2, 4 });
        var q = description.Build();
        using (torch.no_grad()) foreach (var p in q.parameters()) p.add_(0.01);
        var loaded = FlowSerializer.Load(new MemoryStream(Save(q)));
        CollectionAssert.AreEqual(Draw(q, 20, 1), Draw(loaded, 20, 1));
        Assert.AreEqual(System.Text.Json.JsonSerializer.Serialize(description with { DType = "Float32" }), System.Text.Json.JsonSerializer.Serialize(FlowDescription.Of(loaded)));
    }

    [TestMethod]
    public void RoundTripKeepsPresetSettingsOfLayeredFlows()
    {
        var settings = new Dictionary<string, string> { ["hidden"] = "16", ["bins"] = "4" };
        var q = new FlowDescription(new FlowSpec("nsf-coupling", 2, 2, 4, settings), OutputLocation: new[] { 1.0, 2 }, OutputScale: new[] { 3.0, 4 }).Build();
        using (torch.no_grad()) foreach (var p in q.parameters()) p.add_(0.01);
        q.eval(); // a module in training mode would run ActNorm's data-dependent initialization on the first draw
        var loaded = FlowSerializer.Load(new MemoryStream(Save(q)));
        Assert.AreEqual("16", loaded.Spec!.Settings!["hidden"]);
        CollectionAssert.AreEqual(Draw(q, 20, 1), Draw(loaded, 20, 1));
    }

    [TestMethod]
    public void TruncatedOrCorruptedStreamsGiveInvalidDataException()
    {
        byte[] bytes = Save(FlowFactory.Create("planar", 2, 3, seed: 1));
        foreach (int length in new[] { 0, 5, 12, 40, bytes.Length / 2, bytes.Length - 1 })
        {
            var e = Assert.ThrowsExactly<InvalidDataException>(() => FlowSerializer.Load(new MemoryStream(bytes[..length])));
            StringAssert.Contains(e.Message, length < 8 ? "truncated" : "truncated");
        }
        foreach (int position in new[] { 0, 9, 20, bytes.Length / 2, bytes.Length - 40, bytes.Length - 1 })
        {
            var copy = (byte[])bytes.Clone();
            copy[position] ^= 0x5A;
            var e = Assert.ThrowsExactly<InvalidDataException>(() => FlowSerializer.Load(new MemoryStream(copy)), $"byte {position}");
            Assert.IsTrue(e.Message.Contains("corrupt", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("header") || e.Message.Contains("version")
                || e.Message.Contains("truncated"), e.Message);
        }
    }

    /// <summary>Rewrites a saved flow's format version and reseals its checksum, as an older writer would have.</summary>
    private static byte[] AsVersion(byte[] saved, ushort version)
    {
        var body = saved[..^32];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(body.AsSpan(8, 2), version);
        return body.Concat(System.Security.Cryptography.SHA256.HashData(body)).ToArray();
    }

    [TestMethod]
    [DataRow("realnvp")]
    [DataRow("nsf-coupling")]
    public void VersionOneCouplingFlowIsRefusedWithTheReason(string preset)
    {
        var q = FlowFactory.Create(preset, 3, 2, seed: 1);
        q.eval();
        var e = Assert.ThrowsExactly<InvalidDataException>(() => FlowSerializer.Load(new MemoryStream(AsVersion(Save(q), 1))));
        StringAssert.Contains(e.Message, "format version 1");
        StringAssert.Contains(e.Message, preset);
        StringAssert.Contains(e.Message, "Fit the flow again");
    }

    [TestMethod]
    [DataRow("planar")]
    [DataRow("iaf")]
    public void VersionOneFilesOfUnchangedLayoutsStillLoad(string preset)
    {
        var q = FlowFactory.Create(preset, 3, 2, seed: 1);
        q.eval();
        var loaded = FlowSerializer.Load(new MemoryStream(AsVersion(Save(q), 1)));
        CollectionAssert.AreEqual(Draw(q, 20, 2), Draw(loaded, 20, 2));
    }

    [TestMethod]
    public void FutureVersionIsRefusedNamingBothVersions()
    {
        var future = (ushort)(FlowSerializer.FormatVersion + 1);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => FlowSerializer.Load(new MemoryStream(AsVersion(Save(FlowFactory.Create("planar", 2, 2)), future))));
        StringAssert.Contains(e.Message, $"format version {future}");
        StringAssert.Contains(e.Message, $"versions 1 to {FlowSerializer.FormatVersion}");
    }

    [TestMethod]
    public void HandAssembledFlowCannotBeSavedAndSaysWhy()
    {
        var q = new Distributions.FlowDistribution(new Distributions.StandardNormal(2), new Transforms.PlanarFlow(2, 2));
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => Save(q));
        StringAssert.Contains(e.Message, "FlowSpec");
    }
}
