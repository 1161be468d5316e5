using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>
/// K radial layers (Rezende &amp; Mohamed 2015): f(z) = z + β h(α, r)(z − z₀), r = ‖z − z₀‖, h = 1/(α + r).
/// α = softplus(α̂) &gt; 0 and β = −α + softplus(β̂) ≥ −α keep each layer invertible.
/// log|det J| = (d − 1) log(1 + βh) + log(1 + βh − βr/(α + r)²).
/// The inverse is analytic: r solves the quadratic r² + (α + β − ρ) r − αρ = 0 with ρ = ‖y − z₀‖.
/// </summary>
public sealed class RadialFlow : FlowTransform
{
    private readonly TorchSharp.Modules.Parameter z0;
    private readonly TorchSharp.Modules.Parameter alphaRaw;
    private readonly TorchSharp.Modules.Parameter betaRaw;

    public RadialFlow(int dimension, int layers, double initScale = 0.1, Generator? generator = null)
        : base(nameof(RadialFlow), dimension)
    {
        if (layers <= 0) throw new ArgumentOutOfRangeException(nameof(layers), layers, "A radial flow needs at least one layer (K ≥ 1).");
        if (!(initScale > 0) || double.IsInfinity(initScale)) throw new ArgumentOutOfRangeException(nameof(initScale), initScale, "initScale must be positive and finite.");
        Layers = layers;
        z0 = new TorchSharp.Modules.Parameter(torch.randn(layers, dimension, generator: generator).mul_(S(initScale * 10)));
        alphaRaw = new TorchSharp.Modules.Parameter(torch.randn(layers, generator: generator).mul_(S(initScale)));
        betaRaw = new TorchSharp.Modules.Parameter(torch.randn(layers, generator: generator).mul_(S(initScale)));
        RegisterComponents();
    }

    public int Layers { get; }

    private (Tensor Alpha, Tensor Beta) Constrained()
    {
        var alpha = alphaRaw.Softplus();
        var beta = betaRaw.Softplus() - alpha;
        return (alpha, beta);
    }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        var (alpha, beta) = Constrained();
        var centers = z0.unbind(0);
        var alphas = alpha.unbind(0);
        var betas = beta.unbind(0);
        Tensor? logDet = null;
        var z = input;
        for (int k = 0; k < Layers; k++)
        {
            var diff = z - centers[k];
            var r = diff.norm(1);                                  // [B]
            var h = alphas[k].Plus(r).reciprocal();
            var betaH = betas[k] * h;
            z = z.Plus(betaH.unsqueeze(1) * diff);
            // 1 + βh + βh'r with h' = −h²:  1 + βh − βrh²
            var ld = (S(Dimension - 1) * torch.log1p(betaH)).Plus(torch.log1p(betaH - betas[k] * r * h.Squared()));
            logDet = logDet is null ? ld : logDet.Plus(ld);
        }
        return (z, logDet!);
    }

    public override bool HasInverse => true;

    public override (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input)
    {
        CheckInput(input);
        var (alpha, beta) = Constrained();
        var y = input;
        Tensor? logDet = null;
        for (int k = Layers - 1; k >= 0; k--)
        {
            var a = alpha[k];
            var bt = beta[k];
            var diffY = y - z0[k];
            var rho = diffY.norm(1);
            var c = a.Plus(bt) - rho;
            var r = (torch.sqrt(c.Squared().Plus(S(4) * a * rho)) - c) / S(2);   // positive root
            var h = a.Plus(r).reciprocal();
            var betaH = bt * h;
            y = z0[k].Plus(diffY / betaH.Plus(1).unsqueeze(1));
            var ld = (S(Dimension - 1) * torch.log1p(betaH)).Plus(torch.log1p(betaH - bt * r * h.Squared()));
            logDet = logDet is null ? -ld : logDet - ld;
        }
        return (y, logDet!);
    }
}
