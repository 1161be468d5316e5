using Microsoft.ML.NormalizingFlows.Tabular;

namespace Microsoft.ML.NormalizingFlows.Tests.Tabular;

[TestClass]
public class ColumnEncodingTests
{
    private static double[] Skewed(int n, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => Math.Exp(random.NextDouble() * 3)).ToArray();
    }

    [TestMethod]
    public void ContinuousValuesRoundTripAndEncodeUniformly()
    {
        var values = Skewed(5000, 1);
        var e = NumericEncoding.Fit("amount", TabularValueType.Double, values, integer: false, maxKnots: 200);
        Assert.AreEqual(TabularColumnKind.Continuous, e.Kind);
        foreach (double x in values.Take(200))
        {
            var encoded = e.Encode(x);
            Assert.AreEqual(encoded.Lo, encoded.Hi, "a continuous value is a point");
            Assert.IsTrue(double.IsFinite(encoded.LogJacobian));
            Assert.AreEqual(x, e.Decode(encoded.Lo), 1e-9 * x, "decode(encode(x))");
        }
        // Under the data, u is uniform: its deciles sit at 0.1, 0.2, …
        var u = values.Select(x => e.Encode(x).Lo).OrderBy(v => v).ToArray();
        for (int k = 1; k < 10; k++) Assert.AreEqual(k / 10.0, u[k * 500], 0.01, $"decile {k} of u");
        // Beyond the data: finite density (exponential tails), clamped generation.
        Assert.IsTrue(double.IsFinite(e.Encode(1000).LogJacobian));
        Assert.IsTrue(double.IsFinite(e.Encode(-5).LogJacobian));
        Assert.AreEqual(e.Max, e.Decode(1 - 1e-12));
        Assert.AreEqual(e.Min, e.Decode(1e-12));
    }

    [TestMethod]
    public void IntegersDequantizeOverTheirShareAndRoundBack()
    {
        var random = new Random(2);
        var counts = Enumerable.Range(0, 4000).Select(_ => (double)(random.Next(6) + random.Next(3))).ToArray();
        var e = NumericEncoding.Fit("visits", TabularValueType.Int32, counts, integer: true);
        foreach (int v in Enumerable.Range(0, 8))
        {
            var encoded = e.Encode(v);
            double share = counts.Count(c => c == v) / (double)counts.Length;
            Assert.AreEqual(share, encoded.Hi - encoded.Lo, 0.01, $"the interval of {v} is its share");
            foreach (double t in new[] { 0.01, 0.5, 0.99 })
                Assert.AreEqual(v, e.Decode(encoded.Lo + t * (encoded.Hi - encoded.Lo)), $"u inside the interval of {v} decodes to {v}");
        }
    }

    [TestMethod]
    public void TiesAndMissingValuesBecomeIntervals()
    {
        var values = Enumerable.Repeat(0.0, 300).Concat(Skewed(600, 3)).Concat(Enumerable.Repeat(double.NaN, 100)).ToArray();
        var e = NumericEncoding.Fit("spend", TabularValueType.Single, values, integer: false);
        Assert.AreEqual(0.1, e.MissingShare, 1e-12);
        var missing = e.Encode(double.NaN);
        Assert.AreEqual(0.0, missing.Lo);
        Assert.AreEqual(0.1, missing.Hi, 1e-12);
        Assert.IsTrue(double.IsNaN(e.Decode(0.05)), "u in the missing share decodes to NaN");
        var zero = e.Encode(0);
        Assert.AreEqual(0.3, zero.Hi - zero.Lo, 0.01, "the point mass at 0 owns its share");
        Assert.AreEqual(0.0, e.Decode((zero.Lo + zero.Hi) / 2));
        // A value between two neighbouring point masses keeps a positive density.
        var table = Enumerable.Repeat(55.0, 500).Concat(Enumerable.Repeat(56.0, 500)).ToArray();
        var t = NumericEncoding.Fit("table", TabularValueType.Single, table, integer: false, maxKnots: 100);
        Assert.IsTrue(double.IsFinite(t.Encode(55.5).LogJacobian), "between point masses");
    }

    [TestMethod]
    public void BadNumericInputIsNamed()
    {
        var e = Assert.ThrowsExactly<ArgumentException>(() => NumericEncoding.Fit("price", TabularValueType.Double, new[] { 1.0, double.PositiveInfinity }, false));
        StringAssert.Contains(e.Message, "'price'");
        e = Assert.ThrowsExactly<ArgumentException>(() => NumericEncoding.Fit("price", TabularValueType.Double, new[] { double.NaN }, false));
        StringAssert.Contains(e.Message, "no non-missing value");
    }

    [TestMethod]
    public void CategoriesKeepTheirOrderAndOnlySeenLevelsComeBack()
    {
        var values = Enumerable.Repeat("Good", 30).Concat(Enumerable.Repeat("Fair", 10)).Concat(Enumerable.Repeat("Ideal", 60)).ToList();
        var e = CategoryEncoding.Fit("cut", TabularValueType.Text, 0, values, new[] { "Fair", "Good", "Premium", "Ideal" });
        CollectionAssert.AreEqual(new[] { "Fair", "Good", "Premium", "Ideal" }, e.Levels.ToArray());
        Assert.AreEqual((0.0, 0.1), (e.Encode(0).Lo, e.Encode(0).Hi));
        Assert.AreEqual(0.4, e.Encode(1).Hi, 1e-12);
        Assert.AreEqual(EncodedValue.Unknown, e.Encode(e.IndexOf("Premium")), "a listed level without rows has no mass");
        Assert.AreEqual(EncodedValue.Unknown, e.Encode(e.IndexOf("Astor")), "an unseen level");
        var decoded = Enumerable.Range(0, 1000).Select(i => e.Levels[e.Decode((i + 0.5) / 1000)]).ToList();
        Assert.AreEqual(0, decoded.Count(l => l == "Premium"));
        Assert.AreEqual(600, decoded.Count(l => l == "Ideal"));
        var error = Assert.ThrowsExactly<ArgumentException>(() => CategoryEncoding.Fit("cut", TabularValueType.Text, 0, values, new[] { "Fair", "Good" }));
        StringAssert.Contains(error.Message, "'Ideal'");
    }
}
