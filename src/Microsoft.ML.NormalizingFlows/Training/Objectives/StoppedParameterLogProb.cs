using Microsoft.ML.NormalizingFlows.Distributions;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// log q_φ(z) at reparameterized draws z = T_φ(ε), with the gradient flowing into φ only through z
/// ("stopped parameters"), as the STL and DReG estimators need.
/// <para>
/// A flow returns log q from its sampling pass, and differentiating that includes the score term. What
/// is needed instead is the function z ↦ log q_φ̄(z) (φ̄ = φ held constant) applied to the live z.
/// Chosen automatically, in this order:
/// </para>
/// <list type="bullet">
/// <item>No transform (mean-field / full-rank Gaussian): differentiate <see cref="FlowDistribution.LogProb"/>
/// at z with every parameter's requires_grad switched off for that one call. Exact and cheap.</item>
/// <item>A base and transform that give the score ∇_z log q(z) in closed form (<see cref="FlowDistribution.ScoreFromNoise"/>:
/// planar layers on a normal base): the surrogate below with that score, for about the cost of one more forward pass.</item>
/// <item>A transform with a differentiable inverse (coupling, autoregressive, affine, radial): differentiate
/// <see cref="FlowDistribution.LogProb"/> at z with parameters held constant, one inverse pass. Exact.</item>
/// <item>In both, the value is the sampling pass's log q, not the inverse's (see <see cref="WithValue"/>).</item>
/// <item>Otherwise (planar's inverse is a bisection without gradients): with parameters held constant, re-run the flow
/// from the same noise ε and take s = ∇_z log q(z) = J⁻ᵀ ∇_ε log q(T(ε)), where J = ∂z/∂ε comes from d
/// backward passes (d = dimension) and the d×d systems are solved per draw. The result is the
/// surrogate log q(z).detach() + sᵀ(z − z.detach()): its value is log q, its gradient sᵀ ∂z/∂φ.
/// Cost: one extra forward and d + 1 backward passes per step, so it suits small and moderate d.</item>
/// </list>
/// </summary>
public static class StoppedParameterLogProb
{
    /// <summary>
    /// The surrogate for log q(z) (value = <paramref name="logQ"/>, gradient = path term only).
    /// <paramref name="noise"/> is the ε that produced <paramref name="z"/> through <paramref name="q"/>.
    /// </summary>
    public static Tensor Compute(FlowDistribution q, Tensor noise, Tensor z, Tensor logQ)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(noise);
        ArgumentNullException.ThrowIfNull(z);
        ArgumentNullException.ThrowIfNull(logQ);
        var parameters = q.parameters().Where(p => p.requires_grad).ToList();
        try
        {
            foreach (var p in parameters) p.requires_grad = false;
            if (q.Transform is null && q.Base is FullRankNormal gaussian)
            {
                // ∇_z log q(z) = −Σ⁻¹(z − μ) = −L⁻ᵀ ε, from the ε that made z: recovering ε as L⁻¹(z − μ) first would lose
                // the digits z − μ cancels when the sds are many orders of magnitude apart.
                return WithScore(logQ, torch.linalg.solve_triangular(gaussian.CholeskyFactor.t(), noise.t(), upper: true).t().neg(), z);
            }
            if (q.Transform is null) return WithValue(logQ, q.LogProb(z));
            if (q.ScoreFromNoise(noise) is Tensor closedForm) return WithScore(logQ, closedForm, z);
            if (q.CanEvaluateLogProb)
            {
                // Through the inverse: gradient reaches z only if the inverse is differentiable (it is not for planar).
                var viaInverse = q.LogProb(z);
                if (viaInverse.requires_grad) return WithValue(logQ, viaInverse);
            }
            return WithScore(logQ, ScoreAtDraws(q, noise), z);
        }
        finally
        {
            foreach (var p in parameters) p.requires_grad = true;
        }
    }

    /// <summary>
    /// The sampling pass's log q as the value, with the gradient of the inverse evaluation. The two are equal in exact
    /// arithmetic, but the inverse's value is not to be trusted: for an ill-conditioned q (a full-rank Gaussian whose
    /// Cholesky factor has entries many orders of magnitude apart, as on a posterior of a million rows) the triangular
    /// solve's rounding turned ε into huge values, and ELBO estimates of +1e85 into the divergence test.
    /// </summary>
    private static Tensor WithValue(Tensor logQ, Tensor viaInverse) => logQ.detach().Plus(viaInverse - viaInverse.detach());

    /// <summary>log q's value with the gradient sᵀ ∂z/∂φ, for a score s = ∇_z log q(z) known at the draws.</summary>
    internal static Tensor WithScore(Tensor logQ, Tensor score, Tensor z) => logQ.detach().Plus((score.detach() * (z - z.detach())).sum(1));

    /// <summary>∇_z log q(z) at z = T(ε) for each row of ε (parameters must already be held constant).</summary>
    internal static Tensor ScoreAtDraws(FlowDistribution q, Tensor noise)
    {
        using var enableGrad = torch.enable_grad();
        var eps = noise.detach().requires_grad_(true);
        var (z, logQ) = q.SampleFromNoise(eps);
        int d = q.Dimension;
        var gradient = torch.autograd.grad(new[] { logQ.sum() }, new[] { eps }, retain_graph: true)[0];      // [B, d]
        var rows = new Tensor[d];
        for (int j = 0; j < d; j++)
            rows[j] = torch.autograd.grad(new[] { z[.., j].sum() }, new[] { eps }, retain_graph: j < d - 1)[0]; // ∂z_j/∂ε, [B, d]
        var jacobian = torch.stack(rows, 1);                                                                // [B, d(z), d(ε)]
        return torch.linalg.solve(jacobian.transpose(1, 2), gradient.unsqueeze(-1)).squeeze(-1).detach();    // Jᵀ s = g
    }
}
