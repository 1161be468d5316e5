using System.Diagnostics;
using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.MLNet;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

[TestClass]
public sealed class MLNetFlowTests
{
    private static NormalizingFlowEstimator.Options Quick(string flow = "planar", int layers = 4, int iterations = 60) =>
        new() { Flow = flow, Layers = layers, Iterations = iterations, BatchSize = 64, Seed = 7, BlockSize = 64, ReportEvery = 20 };

    private static NormalizingFlowTransformer FitRing(MLContext ml, IDataView? data = null, NormalizingFlowEstimator.Options? options = null) =>
        ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), options ?? Quick()).Fit(data ?? ml.Data.CreateEmptyRows(0));

    private static Dictionary<ulong, float[]> ReadById(DataViewRowCursor[] cursors, DataViewSchema schema)
    {
        var result = new Dictionary<ulong, float[]>();
        foreach (var cursor in cursors)
        {
            var id = cursor.GetIdGetter();
            var sample = cursor.GetGetter<VBuffer<float>>(schema["Sample"]);
            var logQ = cursor.GetGetter<float>(schema["LogQ"]);
            var logW = cursor.GetGetter<float>(schema["LogWeight"]);
            DataViewRowId rowId = default;
            VBuffer<float> z = default;
            float lq = 0, lw = 0;
            while (cursor.MoveNext())
            {
                id(ref rowId); sample(ref z); logQ(ref lq); logW(ref lw);
                result.Add(rowId.Low, z.DenseValues().Append(lq).Append(lw).ToArray());
            }
            cursor.Dispose();
        }
        return result;
    }

    private static bool Find(SchemaShape shape, string name, out SchemaShape.Column column)
    {
        column = shape.FirstOrDefault(c => c.Name == name);
        return column.Name == name;
    }

    [TestMethod]
    public void SchemaPropagatesWithoutData()
    {
        var ml = new MLContext(seed: 1);
        var estimator = ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), "Z", "Q", "P", "W");
        var inputShape = MLNet.SchemaShapes.Of(new StreamedVectorView(3, 4, (_, _) => 0).Schema);
        var shape = estimator.GetOutputSchema(inputShape);
        Assert.IsTrue(Find(shape, "Z", out var z));
        Assert.AreEqual(SchemaShape.Column.VectorKind.Vector, z.Kind);
        Assert.AreEqual(NumberDataViewType.Single, z.ItemType);
        foreach (var name in new[] { "Q", "P", "W", "Features" }) Assert.IsTrue(Find(shape, name, out _), name);

        // A density model scores rows: LogQ of the input column, no draws appended.
        var density = ml.Transforms.NormalizingFlowDensity(inputColumnName: "Features", flow: "radial").GetOutputSchema(inputShape);
        Assert.IsTrue(Find(density, "LogQ", out _));
        Assert.IsFalse(Find(density, "Sample", out _));
        Assert.IsFalse(Find(density, "LogP", out _));

        var model = FitRing(ml, options: Quick(iterations: 5));
        var schema = model.GetOutputSchema(new StreamedVectorView(3, 4, (_, _) => 0).Schema);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 2), schema["Sample"].Type);
        Assert.AreEqual(NumberDataViewType.Single, schema["LogWeight"].Type);
        Assert.AreEqual("Features", schema[0].Name);
    }

    [TestMethod]
    public void PreviewOfHugeStreamedInputComputesAboutFiveRows()
    {
        var ml = new MLContext(seed: 1);
        var model = FitRing(ml, options: Quick(iterations: 5));
        var huge = new StreamedVectorView(50_000_000_000, 3, (i, j) => i + j);
        var output = model.Transform(huge);
        var preview = output.Preview(5);
        Assert.AreEqual(5, preview.RowView.Length);
        Assert.IsTrue(huge.RowsVisited <= 6, $"visited {huge.RowsVisited} input rows");
        Assert.AreEqual(1, model.BlocksComputed, "one block of draws");

        // Scoring log q of an existing column reads ahead in growing blocks: a preview reads a handful of rows.
        var radial = ml.Transforms.NormalizingFlowDensity(new NormalizingFlowEstimator.Options { Flow = "radial", Layers = 2, Iterations = 5, Seed = 1, InputColumnName = "Features" })
            .Fit(new StreamedVectorView(100, 3, (i, j) => (float)Math.Sin(i + j)));
        var huge2 = new StreamedVectorView(50_000_000_000, 3, (i, j) => (float)Math.Cos(i * j));
        var scored = radial.ScoreLogQ(huge2, "Features", "Density").Preview(5);
        Assert.AreEqual(5, scored.RowView.Length);
        Assert.IsTrue(huge2.ValuesRead <= 20, $"read {huge2.ValuesRead} vectors");
        Assert.IsTrue(scored.RowView.All(r => float.IsFinite((float)r.Values.Single(kv => kv.Key == "Density").Value)));
    }

    [TestMethod]
    public void DrawsDependOnRowIdNotOnCursorOrderOrParallelism()
    {
        var ml = new MLContext(seed: 1);
        var model = FitRing(ml, options: Quick(iterations: 10));
        const long n = 300;
        var forward = model.Transform(new StreamedVectorView(n, 1, (_, _) => 0));
        var reversed = model.Transform(new StreamedVectorView(n, 1, (_, _) => 0, order: i => n - 1 - i));
        var a = ReadById(new[] { forward.GetRowCursor(forward.Schema) }, forward.Schema);
        var b = ReadById(new[] { reversed.GetRowCursor(reversed.Schema) }, reversed.Schema);
        var c = ReadById(forward.GetRowCursorSet(forward.Schema, 3), forward.Schema);
        Assert.AreEqual(n, a.Count);
        foreach (var (id, values) in a)
        {
            CollectionAssert.AreEqual(values, b[id], $"row {id}, reversed order");
            CollectionAssert.AreEqual(values, c[id], $"row {id}, parallel cursors");
        }
        // The parallel cursors consumed on concurrent threads.
        var cursors = forward.GetRowCursorSet(forward.Schema, 3);
        var parts = new Dictionary<ulong, float[]>[cursors.Length];
        Parallel.For(0, cursors.Length, k => parts[k] = ReadById(new[] { cursors[k] }, forward.Schema));
        foreach (var part in parts) foreach (var (id, values) in part) CollectionAssert.AreEqual(a[id], values, $"row {id}, concurrent cursors");
        Assert.AreEqual(n, parts.Sum(p => p.Count));
        Assert.AreNotEqual(a[0][0], a[1][0], "rows differ");
        // Generate(N) gives the same rows as transforming N empty rows.
        var generated = ReadById(new[] { model.Generate(n).GetRowCursor(model.Generate(n).Schema) }, model.Generate(n).Schema);
        CollectionAssert.AreEqual(a[123], generated[123]);
    }

    private sealed class Point { public float X { get; set; } public float Y { get; set; } }
    private sealed class Scored { public float LogQ { get; set; } }
    private sealed class Out
    {
        [VectorType(2)] public float[] Sample { get; set; } = Array.Empty<float>();
        [VectorType(2)] public float[] SampleScaled { get; set; } = Array.Empty<float>();
        public float LogQ { get; set; }
        public float LogP { get; set; }
        public float LogWeight { get; set; }
        [VectorType(5)] public float[] All { get; set; } = Array.Empty<float>();
    }

    [TestMethod]
    public void WorksInsideAPipelineWithBuiltInTransforms()
    {
        var ml = new MLContext(seed: 1);
        var rows = Enumerable.Range(0, 40).Select(i => new Point { X = i, Y = -i }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var pipeline = ml.Transforms.Concatenate("Input", "X", "Y")
            .Append(ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), Quick()))
            .Append(ml.Transforms.CopyColumns("SampleScaled", "Sample"))
            .Append(ml.Transforms.NormalizeMinMax("SampleScaled"))
            .Append(ml.Transforms.Concatenate("All", "Sample", "LogQ", "LogP", "LogWeight"));
        var model = pipeline.Fit(data);
        var output = model.Transform(data);
        var preview = output.Preview(3);
        Assert.AreEqual(3, preview.RowView.Length);
        var list = ml.Data.CreateEnumerable<Out>(output, reuseRowObject: false).ToList();
        Assert.AreEqual(40, list.Count);
        foreach (var r in list)
        {
            Assert.AreEqual(r.LogP - r.LogQ, r.LogWeight, 1e-4);
            Assert.IsTrue(r.SampleScaled.All(v => Math.Abs(v) <= 1 + 1e-6)); // min-max with fixZero maps into [-1, 1]
            CollectionAssert.AreEqual(r.Sample.Concat(new[] { r.LogQ, r.LogP, r.LogWeight }).ToArray(), r.All);
        }
        var engine = ml.Model.CreatePredictionEngine<Point, Out>(model);
        var p1 = engine.Predict(new Point { X = 1, Y = 2 });
        Assert.AreEqual(2, p1.Sample.Length);
        Assert.IsTrue(float.IsFinite(p1.LogWeight));

        // Density estimation after a built-in normalizer.
        var density = ml.Transforms.Concatenate("Features", "X", "Y")
            .Append(ml.Transforms.NormalizeMinMax("Features"))
            .Append(ml.Transforms.NormalizingFlowDensity(new NormalizingFlowEstimator.Options { Flow = "full-rank", Iterations = 50, Seed = 1 }))
            .Fit(data);
        var scores = density.Transform(data).GetColumn<float>("LogQ").ToList();
        Assert.AreEqual(40, scores.Count);
        Assert.IsTrue(scores.All(float.IsFinite));
        var synthetic = NormalizingFlowTransformer.FindAll(density).Single().Generate(40).GetColumn<float[]>("Sample").ToList();
        Assert.AreEqual(40, synthetic.Count);
        Assert.IsTrue(synthetic.All(s => s.Length == 2 && s.All(float.IsFinite)));
        // A prediction engine over the density pipeline scores one row at a time, with the same value.
        var densityEngine = ml.Model.CreatePredictionEngine<Point, Scored>(density);
        Assert.AreEqual(scores[7], densityEngine.Predict(rows[7]).LogQ, 1e-4f);
    }

    [TestMethod]
    public void FitLogsToMLContextAndReportsProgress()
    {
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) messages.Add(e.Message); };
        var reports = new List<TrainingProgress>();
        var options = Quick(iterations: 40);
        options.Progress = new InlineProgress<TrainingProgress>(reports.Add);
        FitRing(ml, options: options);
        Assert.AreEqual(2, reports.Count);
        Assert.IsTrue(messages.Any(m => m.Contains("variational inference")), string.Join("\n", messages.Take(5)));
        Assert.IsTrue(messages.Any(m => m.Contains("step 40/40")));
    }


    // ---- persistence ----------------------------------------------------------------------------------

    private static (ITransformer Model, DataViewSchema Schema) FitPipeline(MLContext ml, Target target)
    {
        // The natural schema to save with: the library's own empty rows (ML.NET refused a schema without columns).
        var model = ml.Transforms.NormalizingFlow(target, Quick(iterations: 40))
            .Append(ml.Transforms.CopyColumns("SampleScaled", "Sample"))
            .Append(ml.Transforms.NormalizeMinMax("SampleScaled"))
            .Fit(ml.Data.CreateEmptyRows(100));
        return (model, ml.Data.CreateEmptyRows(0).Schema);
    }

    /// <summary>Every Single value a model produces for N rows, as the fresh-process helper writes them.</summary>
    private static byte[] Outputs(ITransformer model, long rows)
    {
        // A density model generates N rows and scores them; a variational model transforms N empty rows.
        var density = model as NormalizingFlowTransformer is { Mode: FlowFitMode.DensityEstimation } d ? d : null;
        var output = density is null ? model.Transform(new MLContext().Data.CreateEmptyRows(rows)) : density.ScoreLogQ(density.Generate(rows), "Sample", "Score");
        using var stream = new MemoryStream();
        using var w = new BinaryWriter(stream);
        foreach (var column in output.Schema.Where(c => !c.IsHidden))
        {
            if (column.Type is VectorDataViewType)
                foreach (var row in output.GetColumn<float[]>(column)) foreach (var v in row) w.Write(v);
            else if (column.Type == NumberDataViewType.Single) foreach (var v in output.GetColumn<float>(column)) w.Write(v);
        }
        w.Flush();
        return stream.ToArray();
    }

    private static (int ExitCode, string Output) RunHelper(params string[] args)
    {
        string helper = Path.Combine(AppContext.BaseDirectory, "Microsoft.ML.NormalizingFlows.ModelRoundTrip.dll");
        Assert.IsTrue(File.Exists(helper), helper);
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(helper);
        foreach (var a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        string stdout = process.StandardOutput.ReadToEnd();
        string stderr = process.StandardError.ReadToEnd();
        Assert.IsTrue(process.WaitForExit(120_000), "helper timed out");
        return (process.ExitCode, stdout + stderr);
    }

    [TestMethod]
    public void ModelSaveLoadInAFreshProcessGivesBackTheFlowTransformerBitIdentical()
    {
        var ml = new MLContext(seed: 1);
        var (model, schema) = FitPipeline(ml, TargetGallery.Create("ring"));
        string dir = Path.Combine(Path.GetTempPath(), "nf-roundtrip-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string zip = Path.Combine(dir, "model.zip"), outFile = Path.Combine(dir, "out.bin");
            ml.Model.Save(model, schema, zip);
            using (var archive = ZipFile.OpenRead(zip))
                Assert.IsTrue(archive.Entries.Any(e => e.FullName.EndsWith(NormalizingFlowTransformer.FlowStreamName)), "weights inside the zip");
            var (code, text) = RunHelper(zip, "300", outFile);
            Assert.AreEqual(0, code, text);
            StringAssert.Contains(text, $"FLOW {typeof(NormalizingFlowTransformer).FullName} mode=VariationalInference d=2 target=ring");
            StringAssert.Contains(text, "COLUMN Sample Vector<Single, 2>");
            StringAssert.Contains(text, "COLUMN LogWeight Single");
            StringAssert.Contains(text, "COLUMN SampleScaled Vector<Single, 2>");
            CollectionAssert.AreEqual(Outputs(model, 300), File.ReadAllBytes(outFile), "bit-identical outputs in the fresh process");
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [TestMethod]
    public void DensityModelWithLayeredFlowRoundTripsInAFreshProcess()
    {
        var ml = new MLContext(seed: 1);
        var data = new StreamedVectorView(500, 3, (i, j) => (float)(Math.Sin(0.37 * i * (j + 1)) * (j + 1) + 10 * j));
        var model = ml.Transforms.NormalizingFlowDensity(new NormalizingFlowEstimator.Options
        {
            Flow = "nsf-coupling", Layers = 2, Iterations = 30, Seed = 2, BlockSize = 100,
            FlowSettings = new() { ["hidden"] = "16", ["bins"] = "4" },
        }).Fit(data);
        string dir = Path.Combine(Path.GetTempPath(), "nf-roundtrip-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string zip = Path.Combine(dir, "model.zip"), outFile = Path.Combine(dir, "out.bin");
            ml.Model.Save(model, data.Schema, zip);
            var (code, text) = RunHelper(zip, "250", outFile);
            Assert.AreEqual(0, code, text);
            StringAssert.Contains(text, "mode=DensityEstimation d=3");
            StringAssert.Contains(text, "COLUMN Sample Vector<Single, 3>");
            CollectionAssert.AreEqual(Outputs(model, 250), File.ReadAllBytes(outFile));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [TestMethod]
    public void LoadedModelWithUserTargetEmitsNaNUntilTheTargetIsRebound()
    {
        var ml = new MLContext(seed: 1);
        var user = Target.FromDelegate("banana", 2, z => -0.5 * (z[.., 0].square() + (z[.., 1] - z[.., 0].square()).square()));
        var (model, schema) = FitPipeline(ml, user);
        using var stream = new MemoryStream();
        ml.Model.Save(model, schema, stream);
        stream.Position = 0;
        var loaded = ml.Model.Load(stream, out var loadedSchema);
        var flow = NormalizingFlowTransformer.FindAll(loaded).Single();
        Assert.IsNull(flow.Target);
        var before = model.Transform(ml.Data.CreateEmptyRows(50));
        var after = loaded.Transform(ml.Data.CreateEmptyRows(50));
        Assert.IsTrue(after.GetColumn<float>("LogP").All(float.IsNaN));
        Assert.IsTrue(after.GetColumn<float>("LogWeight").All(float.IsNaN));
        CollectionAssert.AreEqual(before.GetColumn<float>("LogQ").ToArray(), after.GetColumn<float>("LogQ").ToArray());
        Assert.AreEqual(1, NormalizingFlowTransformer.BindTarget(loaded, user));
        CollectionAssert.AreEqual(before.GetColumn<float>("LogWeight").ToArray(), loaded.Transform(ml.Data.CreateEmptyRows(50)).GetColumn<float>("LogWeight").ToArray());
        Assert.ThrowsExactly<ArgumentException>(() => flow.BindTarget(Target.FromDelegate("3d", 3, z => z.sum(1))));
    }

    [TestMethod]
    public void CorruptOrTruncatedModelFilesGiveClearExceptions()
    {
        var ml = new MLContext(seed: 1);
        var (model, schema) = FitPipeline(ml, TargetGallery.Create("ring"));
        using var stream = new MemoryStream();
        ml.Model.Save(model, schema, stream);
        byte[] zip = stream.ToArray();

        // Truncated zip: the archive itself is unreadable.
        var e1 = Assert.Throws<Exception>(() => ml.Model.Load(new MemoryStream(zip[..(zip.Length / 2)]), out _));
        Assert.IsFalse(string.IsNullOrWhiteSpace(e1.Message));

        // A valid zip whose flow entry was damaged: our checksum catches it, naming the problem.
        var damaged = new MemoryStream();
        damaged.Write(zip);
        using (var archive = new ZipArchive(damaged, ZipArchiveMode.Update, leaveOpen: true))
        {
            var entry = archive.Entries.Single(e => e.FullName.EndsWith(NormalizingFlowTransformer.FlowStreamName));
            byte[] bytes;
            using (var s = entry.Open()) { using var copy = new MemoryStream(); s.CopyTo(copy); bytes = copy.ToArray(); }
            bytes[bytes.Length / 2] ^= 0xFF;
            entry.Delete();
            using var w = archive.CreateEntry(entry.FullName).Open();
            w.Write(bytes);
        }
        damaged.Position = 0;
        var e2 = Assert.Throws<Exception>(() => ml.Model.Load(damaged, out _));
        var inner = e2;
        while (inner is not InvalidDataException && inner.InnerException is not null) inner = inner.InnerException;
        Assert.IsInstanceOfType<InvalidDataException>(inner, e2.ToString());
        StringAssert.Contains(inner.Message, "corrupted"); // the checksum, or a length check before it, depending on which byte was hit
        // ML.NET wraps loader errors in TargetInvocationException (it invokes loaders by reflection); LoadUnwrapped
        // rethrows ours, so the natural catch works.
        damaged.Position = 0;
        var unwrapped = Assert.ThrowsExactly<InvalidDataException>(() => ml.Model.LoadUnwrapped(damaged, out _));
        StringAssert.Contains(unwrapped.Message, "corrupted");
        stream.Position = 0;
        Assert.IsNotNull(ml.Model.LoadUnwrapped(new MemoryStream(zip), out _), "a good model loads the same way");
    }

    // ---- bad input ------------------------------------------------------------------------------------

    [TestMethod]
    public void BadInputsGiveSpecificExceptionsNamingTheColumn()
    {
        var ml = new MLContext(seed: 1);
        IEstimator<ITransformer> Density(string column = "Features", string flow = "radial") =>
            ml.Transforms.NormalizingFlowDensity(new NormalizingFlowEstimator.Options { InputColumnName = column, Flow = flow, Layers = 2, Iterations = 5, Seed = 1 });
        var good = new StreamedVectorView(50, 2, (i, j) => (float)Math.Sin(3 * i + j));

        // Missing column.
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Density("Nope").Fit(good));
        StringAssert.Contains(e.Message, "'Nope'");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Density("Nope").GetOutputSchema(MLNet.SchemaShapes.Of(good.Schema)));
        StringAssert.Contains(e.Message, "'Nope'");
        // Wrong column type (scalar).
        var scalar = new StreamedVectorView(50, 1, (i, j) => i, type: NumberDataViewType.Single);
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Density().Fit(scalar));
        StringAssert.Contains(e.Message, "'Features' must be a known-size vector of Single");
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Density().Fit(new StreamedVectorView(50, 2, (i, j) => i, type: new VectorDataViewType(NumberDataViewType.Double, 2))));
        StringAssert.Contains(e.Message, "'Features'");
        // Variable-size vector.
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Density().Fit(new StreamedVectorView(50, 2, (i, j) => i, type: new VectorDataViewType(NumberDataViewType.Single))));
        StringAssert.Contains(e.Message, "variable-size");
        // NaN in training data: names the column and the row.
        var withNaN = new StreamedVectorView(50, 2, (i, j) => i == 17 && j == 1 ? float.NaN : i);
        var nan = Assert.ThrowsExactly<InvalidOperationException>(() => Density().Fit(withNaN));
        StringAssert.Contains(nan.Message, "'Features'");
        StringAssert.Contains(nan.Message, "row 17");
        // A flow without a differentiable inverse cannot be fitted by maximum likelihood.
        var planar = Assert.ThrowsExactly<NotSupportedException>(() => Density(flow: "planar").Fit(good));
        StringAssert.Contains(planar.Message, "'planar'");

        // Vector size ≠ d when scoring log q.
        var fitted = (NormalizingFlowTransformer)Density().Fit(good);
        e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => fitted.ScoreLogQ(new StreamedVectorView(5, 3, (i, j) => 0), "Features"));
        StringAssert.Contains(e.Message, "vector size 3 but the flow has dimension 2");
        Assert.AreEqual("inputColumnName", e.ParamName);
        // Null input / unknown flow / duplicate output names.
        Assert.ThrowsExactly<ArgumentNullException>(() => fitted.Transform(null!));
        var unknown = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), flow: "nope"));
        Assert.AreEqual("Flow", unknown.ParamName);
        var dup = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.NormalizingFlow(TargetGallery.Create("ring"), "A", "A"));
        StringAssert.Contains(dup.Message, "'A'");
    }

    [TestMethod]
    public void FitCancelledBeforeAnyStepGivesNoTransformerAndLaterCancellationKeepsTheProgress()
    {
        var ml = new MLContext(seed: 1);
        var options = Quick(iterations: 100);
        options.CancellationToken = new CancellationToken(canceled: true);
        Assert.ThrowsExactly<OperationCanceledException>(() => FitRing(ml, options: options));

        using var source = new CancellationTokenSource();
        options = Quick(iterations: 100);
        options.CancellationToken = source.Token;
        options.Progress = new InlineProgress<TrainingProgress>(p => { if (p.Iteration >= 20) source.Cancel(); });
        var model = FitRing(ml, options: options);
        Assert.IsTrue(model.TrainingResult!.Cancelled);
        Assert.AreEqual(20, model.TrainingResult.Iterations); // cancelled at the report after step 20
    }

    [TestMethod]
    public void DensityModeScoresAndGeneratesOnTheDataScale()
    {
        // Data ~ N((10, -5), diag(4, 0.25)): a full-rank Gaussian fit by maximum likelihood on standardized data
        // must recover the mean/scale and give log q close to the true log density.
        var ml = new MLContext(seed: 1);
        var rng = new Random(3);
        float[] Draw() { double u1 = 1 - rng.NextDouble(), u2 = rng.NextDouble(); double r = Math.Sqrt(-2 * Math.Log(u1)); return new[] { (float)(10 + 2 * r * Math.Cos(2 * Math.PI * u2)), (float)(-5 + 0.5 * r * Math.Sin(2 * Math.PI * u2)) }; }
        var points = Enumerable.Range(0, 4000).Select(_ => Draw()).ToArray();
        var data = new StreamedVectorView(points.Length, 2, (i, j) => points[i][j]);
        var model = ml.Transforms.NormalizingFlowDensity(new NormalizingFlowEstimator.Options { Flow = "full-rank", Iterations = 400, LearningRate = 1e-2, Seed = 1 }).Fit(data);
        var synthetic = model.Generate(4000).GetColumn<float[]>("Sample").ToArray();
        Assert.AreEqual(10, synthetic.Average(s => s[0]), 0.15);
        Assert.AreEqual(-5, synthetic.Average(s => s[1]), 0.05);
        var scored = model.ScoreLogQ(data, "Features").GetColumn<float>("LogQ").ToArray();
        double trueAvg = points.Average(p => -Math.Log(2 * Math.PI * 2 * 0.5) - 0.5 * (Math.Pow((p[0] - 10) / 2, 2) + Math.Pow((p[1] + 5) / 0.5, 2)));
        Assert.AreEqual(trueAvg, scored.Average(), 0.02);
    }
}
