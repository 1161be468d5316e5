using Microsoft.ML.NormalizingFlows.Sequential;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using static Microsoft.ML.NormalizingFlows.Tests.Sequential.SequentialReferences;

namespace Microsoft.ML.NormalizingFlows.Tests.Sequential;

/// <summary>
/// The linear recurrence equals the step-by-step loop in value and gradient (float64, 1e-10), with zeros, growth, tiny and
/// broadcast coefficients. Run once per implementation: the sequential CPU pass that CPU tensors take, and the chunked
/// scan that other devices take (so that a CPU-only suite still holds the scan to the loop).
/// </summary>
public abstract class LinearRecurrenceTests
{
    private protected abstract LinearRecurrence.Algorithm Algorithm { get; }

    private torch.Tensor Scan(torch.Tensor a, torch.Tensor b, torch.Tensor? initial = null) => LinearRecurrence.Scan(a, b, initial, Algorithm);

    /// <summary>The scan against the loop, in value and in the gradients of (x · w).sum() with respect to a, b and x_0
    /// (the loop may take broadcast copies of a and x_0; the gradients must still reach the originals).</summary>
    private void AssertScanEqualsLoop(torch.Tensor a, torch.Tensor b, torch.Tensor x0, torch.Tensor w, torch.Tensor? loopA = null, torch.Tensor? loopX0 = null)
    {
        var scanned = Scan(a, b, x0);
        var looped = RecurrenceLoop(loopA ?? a, b, loopX0 ?? x0);
        AssertCloseRelative(looped, scanned, 1e-10, "x_t");
        var gradScan = torch.autograd.grad(new[] { (scanned * w).sum() }, new[] { a, b, x0 });
        var gradLoop = torch.autograd.grad(new[] { (looped * w).sum() }, new[] { a, b, x0 });
        for (int i = 0; i < 3; i++) AssertCloseRelative(gradLoop[i], gradScan[i], 1e-10, $"gradient {i}");
    }


    [TestMethod]
    [DataRow(1L)]
    [DataRow(2L)]
    [DataRow(7L)]
    [DataRow(64L)]
    [DataRow(1_000L)]
    public void TheLinearRecurrenceScanEqualsTheLoopInValueAndGradient(long steps)
    {
        var a = (Random(1, 3, steps).tanh() * 0.99).requires_grad_(); // |a| < 1, as in a stationary AR or GARCH recursion
        var b = Random(2, 3, steps).requires_grad_();
        var x0 = Random(3, 3).requires_grad_();
        var w = Random(4, 3, steps);
        AssertScanEqualsLoop(a, b, x0, w);
    }

    [TestMethod]
    [DataRow(1L)]
    [DataRow(5L)]
    [DataRow(32L)]
    [DataRow(33L)]
    [DataRow(1_000L)]
    [DataRow(2_100L)]
    public void AConstantCoefficientEqualsTheLoop(long steps)
    {
        // One coefficient per series ([4, 1]), including a zero and a negative one, which the chunk products' reciprocals
        // would break unguarded; 2,100 steps need three levels of chunks (132 chunks of 16, then 9).
        var a = torch.tensor(new[] { 0.97, -0.6, 0.0, 0.3 }, ScalarType.Float64).unsqueeze(1).requires_grad_();
        var b = Random(6, 4, steps).requires_grad_();
        var x0 = Random(7, 4).requires_grad_();
        var w = Random(8, 4, steps);
        AssertScanEqualsLoop(a, b, x0, w, loopA: a.expand(4, steps));
        // Without x_0, and with a shared across a batch of draws by broadcasting ([1] against [2, 4, T]).
        var shared = torch.tensor(new[] { 0.8 }, ScalarType.Float64);
        var batch = Random(9, 2, 4, steps);
        AssertCloseRelative(RecurrenceLoop(shared.expand(2, 4, steps), batch, null), Scan(shared, batch), 1e-10, "shared a, x_0 = 0");
    }

    [TestMethod]
    public void TimeVaryingCoefficientsWithZerosAndGrowthStillEqualTheLoop()
    {
        // Exact zeros (a reset), a stretch with |a| > 1 (growth) and tiny coefficients, in one series of 300 steps.
        long steps = 300;
        var values = new double[3 * steps];
        var random = new Random(11);
        for (int i = 0; i < values.Length; i++)
            values[i] = (i % 37) switch { 0 => 0.0, 1 => -0.0, 2 => 1e-20, 3 => -3e-17, _ => (i / 100) % 3 == 1 ? 1.02 + 0.05 * random.NextDouble() : 1.6 * random.NextDouble() - 0.8 };
        var a = torch.tensor(values, ScalarType.Float64).reshape(3, steps).requires_grad_();
        var b = Random(12, 3, steps).requires_grad_();
        var x0 = Random(13, 3).requires_grad_();
        var w = Random(14, 3, steps);
        AssertScanEqualsLoop(a, b, x0, w);
    }

    [TestMethod]
    public void GradientsReachBroadcastInputsAndFloat32StaysFloat32()
    {
        // A coefficient shared by every series ([1]), an initial value shared too ([]), offsets [2, 3, T]: autograd sums
        // the per-series gradients back to the inputs' shapes.
        long steps = 50;
        var a = torch.tensor(new[] { 0.9 }, ScalarType.Float64).requires_grad_();
        var x0 = torch.tensor(0.5, ScalarType.Float64).requires_grad_();
        var b = Random(15, 2, 3, steps).requires_grad_();
        var w = Random(16, 2, 3, steps);
        AssertScanEqualsLoop(a, b, x0, w, loopA: a.expand(2, 3, steps), loopX0: x0.expand(2, 3));
        var looped = RecurrenceLoop(a.expand(2, 3, steps), b, x0.expand(2, 3)).detach();

        var single = Scan(a.detach().to_type(ScalarType.Float32), b.detach().to_type(ScalarType.Float32), x0.detach().to_type(ScalarType.Float32));
        Assert.AreEqual(ScalarType.Float32, single.dtype);
        AssertCloseRelative(looped, single.to_type(ScalarType.Float64), 1e-5, "float32 x_t");
    }

    [TestMethod]
    public void TheLinearRecurrenceBroadcastsACoefficientPerSeriesAndStartsAtZeroByDefault()
    {
        var a = torch.tensor(new[] { 0.5, -0.25 }, ScalarType.Float64).unsqueeze(1); // one coefficient per series, [2, 1]
        var b = Random(5, 2, 9);
        AssertCloseRelative(RecurrenceLoop(a.expand(2, 9), b, null), Scan(a, b), 1e-12, "broadcast a, x_0 = 0");
        var e = Assert.ThrowsExactly<ArgumentException>(() => Scan(torch.ones(3, 5), torch.ones(2, 5)));
        Assert.AreEqual("a", e.ParamName);
        StringAssert.Contains(e.Message, "[3, 5]");
    }
}

[TestClass]
public sealed class LinearRecurrenceSequentialCpuTests : LinearRecurrenceTests
{
    private protected override LinearRecurrence.Algorithm Algorithm => LinearRecurrence.Algorithm.SequentialCpu;
}

[TestClass]
public sealed class LinearRecurrenceChunkedScanTests : LinearRecurrenceTests
{
    private protected override LinearRecurrence.Algorithm Algorithm => LinearRecurrence.Algorithm.ChunkedScan;
}
