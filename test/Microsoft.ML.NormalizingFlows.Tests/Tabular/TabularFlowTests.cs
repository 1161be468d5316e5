using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.MLNet;
using Microsoft.ML.NormalizingFlows.Tabular;

namespace Microsoft.ML.NormalizingFlows.Tests.Tabular;

[TestClass]
public class TabularFlowTests : TempDirectoryTest
{
    public sealed class Row
    {
        public string Group { get; set; } = "";
        public double Size { get; set; }
        public float Weight { get; set; }
        public int Visits { get; set; }
        public string Grade { get; set; } = "";
        public bool Member { get; set; }
    }

    // Size depends on the group (the context), weight on size (with a few missing), grade and membership on size.
    private static List<Row> Table(int n, int seed)
    {
        var random = new Random(seed);
        double G() => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        return Enumerable.Range(0, n).Select(_ =>
        {
            string group = random.NextDouble() < 0.3 ? "north" : "south";
            double size = (group == "north" ? 3 : 0) + G();
            return new Row
            {
                Group = group,
                Size = size,
                Weight = random.NextDouble() < 0.05 ? float.NaN : (float)Math.Exp(0.3 * size + 0.2 * G()),
                Visits = (int)Math.Max(0, Math.Round(2 + size + G())),
                Grade = size + 0.5 * G() > 1.5 ? "high" : "low",
                Member = size + G() > 1,
            };
        }).ToList();
    }

    private static readonly Lazy<(MLContext Ml, List<Row> Rows, TabularFlowTransformer Model)> Fitted = new(() =>
    {
        var ml = new MLContext(seed: 1);
        var rows = Table(3000, 4);
        var model = ml.Transforms.TabularFlow(new TabularFlowEstimator.Options
        {
            ContextColumns = new[] { "Group" },
            Flow = new ConditionalFlowSettings(Layers: 4, Hidden: 32, Blocks: 1),
            Iterations = 600,
            BatchSize = 256,
            LearningRate = 3e-3,
            Seed = 5,
            Threads = 1,
            BlockRows = 1000,
        }).Fit(ml.Data.LoadFromEnumerable(rows));
        return (ml, rows, model);
    });

    [TestMethod]
    public void GeneratedRowsHaveTheTablesTypesAndValidValues()
    {
        var (ml, rows, model) = Fitted.Value;
        var generated = model.Generate(2500);
        var schema = ml.Data.LoadFromEnumerable(rows).Schema;
        foreach (var column in schema)
            Assert.AreEqual(column.Type, generated.Schema[column.Name].Type, $"type of {column.Name}");
        var synthetic = ml.Data.CreateEnumerable<Row>(generated, false).ToList();
        Assert.AreEqual(2500, synthetic.Count);
        Assert.IsTrue(synthetic.All(r => r.Grade is "high" or "low" && r.Group is "north" or "south"), "only levels seen in training");
        Assert.IsTrue(synthetic.All(r => r.Visits >= rows.Min(x => x.Visits) && r.Visits <= rows.Max(x => x.Visits)), "integers within the data's range");
        double missing = synthetic.Count(r => float.IsNaN(r.Weight)) / 2500.0;
        Assert.AreEqual(0.05, missing, 0.02, "missing values come back at their rate");
        Assert.AreEqual(0.3, synthetic.Count(r => r.Group == "north") / 2500.0, 0.03, "contexts drawn with the training frequencies");
        double Ks(Func<Row, double> f) => TabularQuality.KolmogorovSmirnov(rows.Select(f).ToArray(), synthetic.Select(f).ToArray());
        Assert.IsTrue(Ks(r => r.Size) < 0.06, $"KS of Size {Ks(r => r.Size):F3}");
        Assert.IsTrue(Ks(r => r.Visits) < 0.06, $"KS of Visits {Ks(r => r.Visits):F3}");
        // Dependence: grade follows size in the synthetic rows as in the real ones.
        double HighShareAbove(List<Row> t) => t.Where(r => r.Size > 2).Count(r => r.Grade == "high") / (double)t.Count(r => r.Size > 2);
        Assert.AreEqual(HighShareAbove(rows), HighShareAbove(synthetic), 0.08, "P(high | size > 2)");
        // Same model, seed and count: the same rows.
        var again = ml.Data.CreateEnumerable<Row>(model.Generate(2500), false).ToList();
        Assert.IsTrue(synthetic.Zip(again).All(p => p.First.Size == p.Second.Size && p.First.Grade == p.Second.Grade), "generation is reproducible");
    }

    [TestMethod]
    public void ConditionalGenerationFollowsTheContext()
    {
        var (ml, rows, model) = Fitted.Value;
        var north = ml.Data.CreateEnumerable<Row>(model.Generate(2000, new Dictionary<string, object> { ["Group"] = "north" }), false).ToList();
        var south = ml.Data.CreateEnumerable<Row>(model.Generate(2000, new Dictionary<string, object> { ["Group"] = "south" }), false).ToList();
        Assert.IsTrue(north.All(r => r.Group == "north") && south.All(r => r.Group == "south"), "the context is repeated in the rows");
        Assert.AreEqual(3.0, north.Average(r => r.Size), 0.2, "mean size given north");
        Assert.AreEqual(0.0, south.Average(r => r.Size), 0.2, "mean size given south");
        double ks = TabularQuality.KolmogorovSmirnov(rows.Where(r => r.Group == "north").Select(r => r.Size).ToArray(), north.Select(r => r.Size).ToArray());
        Assert.IsTrue(ks < 0.08, $"KS of Size given north {ks:F3}");
        // A table of contexts: one row per context row.
        var contexts = ml.Data.LoadFromEnumerable(new[] { new Row { Group = "north" }, new Row { Group = "south" }, new Row { Group = "north" } });
        var perContext = ml.Data.CreateEnumerable<Row>(model.Generate(contexts), false).Select(r => r.Group).ToArray();
        CollectionAssert.AreEqual(new[] { "north", "south", "north" }, perContext);
    }

    [TestMethod]
    public void BadContextsAndColumnsAreNamed()
    {
        var (ml, rows, model) = Fitted.Value;
        var e = Assert.ThrowsExactly<ArgumentException>(() => model.Generate(10, new Dictionary<string, object> { ["Group"] = "west" }));
        StringAssert.Contains(e.Message, "'west'");
        StringAssert.Contains(e.Message, "north");
        e = Assert.ThrowsExactly<ArgumentException>(() => model.Generate(10, new Dictionary<string, object> { ["Size"] = 1.0 }));
        StringAssert.Contains(e.Message, "not a context column");
        e = Assert.ThrowsExactly<ArgumentException>(() => model.Generate(10, new Dictionary<string, object>()));
        StringAssert.Contains(e.Message, "'Group'");
        var vectors = ml.Data.LoadFromEnumerable(new[] { new VectorRow { V = new float[] { 1, 2 } }, new VectorRow { V = new float[] { 3, 4 } } });
        var unsupported = Assert.ThrowsExactly<NotSupportedException>(() => ml.Transforms.TabularFlow(new() { Iterations = 1 }).Fit(vectors));
        StringAssert.Contains(unsupported.Message, "'V'");
        var missingColumn = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.TabularFlow(new() { Columns = new[] { "Nope" }, Iterations = 1 }).Fit(ml.Data.LoadFromEnumerable(rows)));
        StringAssert.Contains(missingColumn.Message, "'Nope'");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.TabularFlow(new() { BatchSize = 0 }));
    }

    public sealed class VectorRow { [VectorType(2)] public float[] V { get; set; } = Array.Empty<float>(); }

    [TestMethod]
    public void ScoringGivesFiniteLogLikelihoodsAndMinusInfinityForUnseenLevels()
    {
        var (ml, rows, model) = Fitted.Value;
        var real = rows.Take(200).ToList();
        var scores = model.Transform(ml.Data.LoadFromEnumerable(real)).GetColumn<float>(model.LogLikelihoodColumnName).ToArray();
        Assert.IsTrue(scores.All(float.IsFinite), "real rows score finitely");
        var odd = new Row { Group = "south", Size = 0, Weight = 1, Visits = 2, Grade = "medium", Member = true };
        var oddScore = model.Transform(ml.Data.LoadFromEnumerable(new[] { odd })).GetColumn<float>(model.LogLikelihoodColumnName).Single();
        Assert.AreEqual(float.NegativeInfinity, oddScore, "an unseen level");
        var outlier = new Row { Group = "south", Size = 9, Weight = 1, Visits = 2, Grade = "low", Member = true };
        var outlierScore = model.Transform(ml.Data.LoadFromEnumerable(new[] { outlier })).GetColumn<float>(model.LogLikelihoodColumnName).Single();
        Assert.IsTrue(float.IsFinite(outlierScore) && outlierScore < scores.Min(), $"an outlier scores below every real row ({outlierScore} vs {scores.Min()})");
        // Far outside the data (an integer count far beyond its range) the likelihood stays finite, just very low.
        var extreme = new Row { Group = "south", Size = 0, Weight = 1, Visits = 400, Grade = "low", Member = true };
        var extremeScore = model.Transform(ml.Data.LoadFromEnumerable(new[] { extreme })).GetColumn<float>(model.LogLikelihoodColumnName).Single();
        Assert.IsTrue(float.IsFinite(extremeScore) && extremeScore < outlierScore, $"a count far beyond the data: {extremeScore}");
        // The prediction-engine path agrees with the block path.
        var engine = ml.Model.CreatePredictionEngine<Row, Scored>(model);
        Assert.AreEqual(scores[0], engine.Predict(real[0]).LogLikelihood, 1e-3);
    }

    public sealed class Scored { public float LogLikelihood { get; set; } }

    [TestMethod]
    public void SavedModelsLoadAndGenerateTheSameRows()
    {
        var (ml, rows, model) = Fitted.Value;
        var data = ml.Data.LoadFromEnumerable(rows.Take(50));
        string path = Path.Combine(TempDirectory, "table.zip");
        ml.Model.Save(model, data.Schema, path);
        var loaded = (TabularFlowTransformer)ml.Model.LoadUnwrapped(path, out _);
        var a = ml.Data.CreateEnumerable<Row>(model.Generate(300), false).ToList();
        var b = ml.Data.CreateEnumerable<Row>(loaded.Generate(300), false).ToList();
        Assert.IsTrue(a.Zip(b).All(p => p.First.Size == p.Second.Size && p.First.Visits == p.Second.Visits && p.First.Grade == p.Second.Grade), "same rows after loading");
        var sa = model.Transform(data).GetColumn<float>("LogLikelihood").ToArray();
        var sb = loaded.Transform(data).GetColumn<float>("LogLikelihood").ToArray();
        CollectionAssert.AreEqual(sa, sb);
        // A corrupt file is refused with a clear message.
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var refused = Assert.Throws<Exception>(() => ml.Model.LoadUnwrapped(path, out _));
        Assert.IsTrue(refused is InvalidDataException or FormatException, $"a truncated model is refused as corrupt, not with {refused.GetType().Name}");
    }

    [TestMethod]
    public void TheQualityReportSeesCopiesAndShiftedColumns()
    {
        var (ml, rows, model) = Fitted.Value;
        var train = ml.Data.LoadFromEnumerable(rows.Take(2000).ToList());
        var holdout = ml.Data.LoadFromEnumerable(rows.Skip(2000).ToList());
        var copies = ml.Data.LoadFromEnumerable(rows.Take(1000).ToList());
        var shifted = ml.Data.LoadFromEnumerable(rows.Take(1000).Select(r => new Row { Group = r.Group, Size = r.Size + 1, Weight = r.Weight, Visits = -r.Visits - 1, Grade = r.Grade, Member = r.Member }).ToList());
        var copyReport = TabularQuality.Compare(holdout, copies, training: train);
        Assert.IsTrue(copyReport.Privacy!.ShareCloserThanHoldout5thPercentile > 0.99, "copies of training rows are flagged");
        var shiftReport = TabularQuality.Compare(holdout, shifted);
        Assert.IsTrue(shiftReport.Columns.Single(c => c.Name == "Size").Statistic > 0.3, "a shifted column has a large KS");
        Assert.AreEqual(1000, shiftReport.Columns.Single(c => c.Name == "Visits").Violations, "negative counts violate the data's sign");
        var synthetic = model.Generate(1000);
        var report = TabularQuality.Compare(holdout, synthetic, training: train);
        Assert.AreEqual(0, report.Violations);
        Assert.IsTrue(report.Privacy!.ShareCloserThanHoldout5thPercentile < 0.15, $"generated rows are not copies ({report.Privacy.ShareCloserThanHoldout5thPercentile:P1})");
        StringAssert.Contains(report.ToString(), "worst KS");
        Assert.AreEqual(0.0, TabularQuality.KolmogorovSmirnov(new[] { 1.0, 2, 3 }, new[] { 3.0, 2, 1 }));
        Assert.AreEqual(0.5, TabularQuality.TotalVariation(new[] { "a", "a" }, new[] { "a", "b" }), 1e-12);
    }

    public sealed class KeyedRow { public string Level { get; set; } = ""; public float Size { get; set; } public int Count { get; set; } }

    [TestMethod]
    public void KeyColumnsAndKindOverridesRoundTrip()
    {
        var ml = new MLContext(seed: 2);
        var random = new Random(3);
        var rows = Enumerable.Range(0, 1500).Select(i =>
        {
            string level = new[] { "small", "medium", "large" }[random.Next(3)];
            return new KeyedRow { Level = level, Size = (float)(Array.IndexOf(new[] { "small", "medium", "large" }, level) + random.NextDouble()), Count = random.Next(4) * 10 };
        }).ToList();
        var keyed = ml.Transforms.Conversion.MapValueToKey("Level").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        var model = ml.Transforms.TabularFlow(new TabularFlowEstimator.Options
        {
            ColumnOptions = { ["Count"] = new TabularColumnOptions { Kind = TabularColumnKind.Categorical } },
            Flow = new ConditionalFlowSettings(Layers: 2, Hidden: 16, Blocks: 1),
            Iterations = 150,
            BatchSize = 128,
            Seed = 1,
            Threads = 1,
        }).Fit(keyed);
        Assert.AreEqual(TabularColumnKind.Categorical, model.Encodings.Single(e => e.Name == "Count").Kind, "the override wins over the integer type");
        var generated = model.Generate(600);
        var type = (KeyDataViewType)generated.Schema["Level"].Type;
        Assert.AreEqual(3UL, type.Count);
        VBuffer<ReadOnlyMemory<char>> names = default;
        generated.Schema["Level"].GetKeyValues(ref names);
        CollectionAssert.AreEquivalent(new[] { "small", "medium", "large" }, names.DenseValues().Select(n => n.ToString()).ToArray());
        var keys = generated.GetColumn<uint>("Level").ToArray();
        Assert.IsTrue(keys.All(k => k is >= 1 and <= 3), "valid keys");
        var counts = generated.GetColumn<int>("Count").ToArray();
        Assert.IsTrue(counts.All(c => c is 0 or 10 or 20 or 30), "a numeric column modelled as categorical returns only seen values");
        // Keys come back with the level they encode: large rows have the largest sizes.
        var back = ml.Data.CreateEnumerable<KeyedRow>(ml.Transforms.Conversion.MapKeyToValue("Level").Fit(generated).Transform(generated), false).ToList();
        Assert.IsTrue(back.Where(r => r.Level == "large").Average(r => r.Size) > back.Where(r => r.Level == "small").Average(r => r.Size) + 0.5);
        // A key column as the context: rows given a key value, and a value the keys never had named in the error.
        var conditional = ml.Transforms.TabularFlow(new TabularFlowEstimator.Options
        {
            ContextColumns = new[] { "Level" },
            Flow = new ConditionalFlowSettings(Layers: 2, Hidden: 16, Blocks: 1),
            Iterations = 50,
            BatchSize = 128,
            Seed = 1,
            Threads = 1,
        }).Fit(keyed);
        var large = conditional.Generate(20, new Dictionary<string, object> { ["Level"] = "large" });
        Assert.IsTrue(large.GetColumn<uint>("Level").All(k => names.DenseValues().ElementAt((int)k - 1).ToString() == "large"));
        var unseen = Assert.ThrowsExactly<ArgumentException>(() => conditional.Generate(5, new Dictionary<string, object> { ["Level"] = "huge" }));
        StringAssert.Contains(unseen.Message, "'huge'");
    }
}
