using Microsoft.ML;
using Microsoft.ML.NormalizingFlows.Modeling;
using Microsoft.ML.NormalizingFlows.Modeling.Constraints;
using Microsoft.ML.NormalizingFlows.Modeling.Distributions;
using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Modeling;

[TestClass]
public sealed class ModelTests
{
    [TestMethod]
    [DataRow("eight_schools_noncentered", 10)]
    [DataRow("gp_regr", 3)]
    [DataRow("arK", 7)]
    public void PosteriorDbModelsWrittenWithTheModelApiMatchTheirTestPoints(string name, int dimension)
    {
        var model = PosteriorDbModels.Create(name);
        Assert.AreEqual(dimension, model.Dimension);
        var target = model.AsTarget();
        var points = PosteriorDbModels.TestPoints(name);
        var z = torch.tensor(points.SelectMany(p => p.Z).ToArray(), ScalarType.Float64).reshape(points.Length, dimension);
        var logP = target.Evaluate(z).data<double>().ToArray();
        for (int i = 0; i < points.Length; i++)
            Assert.AreEqual(points[i].LogDensity, logP[i], 1e-8 * Math.Max(1, Math.Abs(points[i].LogDensity)), $"{name}, test point {i}");
        // Gradients reach every coordinate.
        var zg = z.detach().requires_grad_(true);
        target.Evaluate(zg).sum().backward();
        Assert.IsTrue(zg.grad!.isfinite().all().item<bool>() && zg.grad.abs().gt(0).all().item<bool>(), $"{name}: gradients");
    }

    [TestMethod]
    public void ConstrainAndUnconstrainRoundTripByName()
    {
        var model = new BayesianModel("shapes")
            .Parameter("mu")
            .Parameter("sd", Constraint.Positive, 3)
            .Parameter("w", Constraint.Simplex, 4)
            .Parameter("L", Constraint.CorrelationCholesky, 3, 3)
            .LogDensity(m => new Normal(0, 1).LogProb(m["mu"]));
        Assert.AreEqual(1 + 3 + 3 + 3, model.Dimension);
        var z = torch.randn(new long[] { 5, model.Dimension }, dtype: ScalarType.Float64, generator: new Generator(2));
        var values = model.Constrain(z);
        CollectionAssert.AreEqual(new long[] { 5 }, values["mu"].shape);
        CollectionAssert.AreEqual(new long[] { 5, 3 }, values["sd"].shape);
        CollectionAssert.AreEqual(new long[] { 5, 4 }, values["w"].shape);
        CollectionAssert.AreEqual(new long[] { 5, 3, 3 }, values["L"].shape);
        Assert.IsTrue(values["sd"].gt(0).all().item<bool>());
        Assert.IsTrue((model.Unconstrain(values) - z).abs().max().item<double>() < 1e-10);
        CollectionAssert.AreEqual(new[] { "mu", "sd[1]", "sd[2]", "sd[3]" }, model.Parameters.Take(2).SelectMany(p => p.EntryNames()).ToArray());
        CollectionAssert.AreEqual(new[] { "L[1,1]", "L[1,2]", "L[1,3]", "L[2,1]" }, model.Parameters[3].EntryNames().Take(4).ToArray());
        // The target adds every log |det J|: with a zero log density, log p̃ is exactly their sum.
        var flat = new BayesianModel("jacobians").Parameter("sd", Constraint.Positive, 3).LogDensity(m => torch.zeros(m.BatchSize, dtype: ScalarType.Float64));
        var lp = flat.AsTarget().Evaluate(z.narrow(1, 1, 3)).data<double>();
        Assert.AreEqual(z.narrow(1, 1, 3).sum(1).data<double>()[0], lp[0], 1e-12, "log|J| of exp is Σ z");
    }

    [TestMethod]
    public void DataBindsFromArraysTensorsAndDataViewColumns()
    {
        var ml = new MLContext(seed: 1);
        var rows = Enumerable.Range(0, 6).Select(i => new Row { Y = i * 0.5f, Count = i, Group = (i % 3).ToString(), Flag = i % 2 == 0, Pair = new[] { i, -i * 1f } }).ToList();
        var view = ml.Transforms.Conversion.MapValueToKey("GroupKey", "Group").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        var model = new BayesianModel("data")
            .Parameter("mu")
            .Data("y", view, "Y").Data("count", view, "Count").Data("group", view, "GroupKey").Data("flag", view, "Flag").Data("pair", view, "Pair")
            .Data("tensor", torch.ones(2, 2))
            .LogDensity(m =>
            {
                var y = m.Data("y");
                Assert.AreEqual(m["mu"].dtype, y.dtype, "real data in the batch's dtype");
                Assert.AreEqual(ScalarType.Int64, m.Data("group").dtype, "keys as int64 indices");
                CollectionAssert.AreEqual(new long[] { 6, 2 }, m.Data("pair").shape);
                return new Normal(m["mu"].unsqueeze(1), 1.0 * torch.ones(1, dtype: y.dtype)).LogProb(y).sum(1);
            });
        var lp = model.AsTarget().Evaluate(torch.zeros(2, 1, dtype: ScalarType.Float64));
        Assert.AreEqual(2, (int)lp.shape[0]);
        var sandbox = model.AsTarget(); // the same model evaluates in float32 too
        Assert.AreEqual(ScalarType.Float32, sandbox.Evaluate(torch.zeros(2, 1)).dtype);
        // Group keys are 0-based indices in order of first appearance.
        var groups = new long[6];
        model.LogDensity(m => { m.Data("group").data<long>().CopyTo(groups, 0); return torch.zeros(m.BatchSize, dtype: m["mu"].dtype); }).AsTarget().Evaluate(torch.zeros(1, 1));
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 0, 1, 2 }, groups);
    }

    private sealed class Row
    {
        public float Y { get; set; }
        public int Count { get; set; }
        public string Group { get; set; } = "";
        public bool Flag { get; set; }
        [Microsoft.ML.Data.VectorType(2)] public float[] Pair { get; set; } = new float[2];
    }

    [TestMethod]
    public void BadDeclarationsAndLogDensitiesAreClearErrors()
    {
        var model = new BayesianModel("m").Parameter("mu");
        Assert.ThrowsExactly<ArgumentException>(() => model.Parameter("mu"));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => model.Parameter("w", Constraint.Simplex)).Message, "simplex");
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => model.Data("y", new[] { 1.0, double.NaN })).Message, "position 1");
        Assert.ThrowsExactly<ArgumentException>(() => model.Data("z", new[] { 1.0, 2.0, 3.0 }, 2, 2));
        Assert.ThrowsExactly<InvalidOperationException>(() => model.AsTarget(), "no log density yet");
        var wrongShape = new BayesianModel("wrong").Parameter("mu").LogDensity(m => m["mu"].unsqueeze(1));
        StringAssert.Contains(Assert.ThrowsExactly<TargetException>(() => wrongShape.AsTarget().Evaluate(torch.zeros(3, 1))).Message, "expected [3]");
        var missing = new BayesianModel("missing").Parameter("mu").LogDensity(m => m.Data("nothing"));
        StringAssert.Contains(Assert.ThrowsExactly<TargetException>(() => missing.AsTarget().Evaluate(torch.zeros(3, 1))).Message, "no data 'nothing'");
    }
}
