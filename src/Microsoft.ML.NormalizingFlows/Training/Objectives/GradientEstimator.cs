namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>How the reparameterized gradient of an objective is formed.</summary>
public enum GradientEstimator
{
    /// <summary>The total derivative of log p̃(z) − log q_φ(z) with z = T_φ(ε): path term plus score term.</summary>
    Standard,

    /// <summary>
    /// "Sticking the landing" (Roeder, Wu &amp; Duvenaud 2017): drops the score term ∂log q_φ(z)/∂φ at fixed z,
    /// which has mean zero; the gradient reaches φ only through z. Its variance vanishes when q = p.
    /// With M &gt; 1 inner samples it is biased for the IW-ELBO; prefer <see cref="DoublyReparameterized"/> there.
    /// </summary>
    StickingTheLanding,

    /// <summary>
    /// The doubly reparameterized estimator of the IW-ELBO (Tucker, Lawson, Gu &amp; Maddison 2019):
    /// Σ_m w̃_m² ∂log w_m/∂z_m ∂z_m/∂φ with path-only log q. Unbiased; equals <see cref="StickingTheLanding"/> when M = 1.
    /// </summary>
    DoublyReparameterized,
}
