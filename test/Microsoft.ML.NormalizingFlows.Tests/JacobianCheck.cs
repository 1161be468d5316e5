using Microsoft.ML.NormalizingFlows.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tests;

/// <summary>Brute-force checks of a transform: the autograd Jacobian's log|det| and the inverse round trip.</summary>
internal static class JacobianCheck
{
    /// <summary>Per-sample log|det ∂f/∂x| from the full autograd Jacobian (row i = ∂y_i/∂x; samples are independent, so one
    /// backward of Σ_b y[b, i] gives row i for every sample at once).</summary>
    public static Tensor AutogradLogAbsDet(Func<Tensor, Tensor> f, Tensor x)
    {
        int d = (int)x.shape[1];
        var input = x.detach().clone().requires_grad_(true);
        var y = f(input);
        var rows = new Tensor[d];
        for (int i = 0; i < d; i++)
        {
            var grads = torch.autograd.grad(new[] { y[.., i].sum() }, new[] { input }, retain_graph: true);
            rows[i] = grads[0];
        }
        var jacobian = torch.stack(rows, 1); // [B, d(out), d(in)]
        return torch.linalg.slogdet(jacobian).Item2;
    }

    /// <summary>Asserts forward log|det J| equals the autograd value to <paramref name="tolerance"/>.</summary>
    public static void AssertLogDetMatchesAutograd(FlowTransform transform, Tensor x, double tolerance = 1e-8)
    {
        var (_, logDet) = transform.Forward(x);
        var reference = AutogradLogAbsDet(t => transform.Forward(t).Output, x);
        double err = (logDet - reference).abs().max().ToDouble();
        Assert.IsTrue(err < tolerance, $"{transform.GetType().Name} (d = {transform.Dimension}): max |log|det J| − autograd| = {err:E2} ≥ {tolerance:E0}");
    }

    /// <summary>Asserts f⁻¹(f(x)) = x and that the inverse's log|det| is minus the forward's.</summary>
    public static void AssertRoundTrip(FlowTransform transform, Tensor x, double tolerance)
    {
        using var noGrad = torch.no_grad();
        var (y, logDet) = transform.Forward(x);
        var (back, logDetInverse) = transform.Inverse(y);
        double err = (back - x).abs().max().ToDouble();
        double logDetErr = (logDet + logDetInverse).abs().max().ToDouble();
        Assert.IsTrue(err < tolerance, $"{transform.GetType().Name}: round-trip error {err:E2} ≥ {tolerance:E0}");
        Assert.IsTrue(logDetErr < tolerance * 100, $"{transform.GetType().Name}: forward + inverse log|det| = {logDetErr:E2}, expected ~0");
    }
}
