using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>
/// Shared checks for any <see cref="FlowTransform"/>: log|det J| against the autograd Jacobian, inverse
/// round trips, finiteness. Usable for planar/radial as for the expressive flows.
/// </summary>
public static class FlowTestHelpers
{
    /// <summary>
    /// log|det ∂f/∂x| per sample from the autograd Jacobian, built one output coordinate at a time:
    /// row i of every sample's Jacobian is ∂(Σ_b y[b, i])/∂x (samples are independent, so the sum over the
    /// batch separates). <paramref name="x"/> should be float64.
    /// </summary>
    public static Tensor AutogradLogAbsDet(Func<Tensor, Tensor> f, Tensor x)
    {
        var input = x.detach().clone().requires_grad_(true);
        var y = f(input);
        if (!y.requires_grad) throw new InvalidOperationException("The map's output is not differentiable (computed without autograd).");
        long d = x.shape[1];
        var rows = new Tensor[d];
        for (long i = 0; i < d; i++)
            rows[i] = torch.autograd.grad(new[] { y[.., i].sum() }, new[] { input }, retain_graph: true, allow_unused: true)[0];
        var jacobian = torch.stack(rows, 1);             // [B, d_out, d_in]
        return torch.linalg.slogdet(jacobian).Item2.detach();
    }

    /// <summary>Asserts the transform's log|det J| (forward and, when available, inverse) equals the autograd one.</summary>
    public static void AssertLogDetMatchesAutograd(FlowTransform t, Tensor x, double tolerance = 1e-8, string label = "")
    {
        label = Describe(t, label);
        var (_, reported) = t.Forward(x);
        var expected = AutogradLogAbsDet(z => t.Forward(z).Output, x);
        AssertClose(expected, reported.detach(), tolerance, $"{label} forward log|det J|");
        // Planar's inverse is a bisection under no_grad: its log-det is checked through the round trip instead.
        if (t.HasInverse && t is not PlanarFlow)
        {
            var y = t.Forward(x).Output.detach();
            var (_, reportedInverse) = t.Inverse(y);
            var expectedInverse = AutogradLogAbsDet(z => t.Inverse(z).Output, y);
            AssertClose(expectedInverse, reportedInverse.detach(), tolerance, $"{label} inverse log|det J|");
        }
    }

    /// <summary>Asserts f⁻¹(f(x)) = x and that the two log-determinants cancel.</summary>
    public static void AssertRoundTrip(FlowTransform t, Tensor x, double tolerance, string label = "")
    {
        label = Describe(t, label);
        using var noGrad = torch.no_grad();
        var (y, ldForward) = t.Forward(x);
        var (back, ldInverse) = t.Inverse(y);
        AssertClose(x, back, tolerance, $"{label} round trip");
        AssertClose(ldForward, -ldInverse, tolerance * 10, $"{label} log-det cancellation");
    }

    private static string Describe(FlowTransform t, string label) =>
        label.Length > 0 ? label : $"{t.GetType().Name} (d = {t.Dimension})";

    public static void AssertClose(Tensor expected, Tensor actual, double tolerance, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, $"{what}: shape");
        double worst = (expected.to(ScalarType.Float64) - actual.to(ScalarType.Float64)).abs().max().item<double>();
        Assert.IsTrue(worst <= tolerance, $"{what}: max |difference| = {worst:g3} > {tolerance:g3}");
    }

    public static void AssertFinite(Tensor t, string what) =>
        Assert.IsTrue(t.isfinite().all().item<bool>(), $"{what} has non-finite entries: {t.ToString(TorchSharp.TensorStringStyle.Julia)}");

    /// <summary>Adds N(0, scale²) noise to every parameter so that identity-initialized layers become generic.</summary>
    public static void Perturb(nn.Module module, double scale, long seed)
    {
        var g = new Generator((ulong)seed);
        using var noGrad = torch.no_grad();
        foreach (var p in module.parameters())
            p.add_(torch.randn(p.shape, generator: g).mul_(scale).to(p.dtype));
    }
}
