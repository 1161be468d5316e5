using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Targets;

/// <summary>
/// A proper two-moons density: two interleaved half circles of radius 2 (the shape of the familiar
/// "make_moons" data, centered and scaled ×2) blurred by Gaussian noise of sd σ across the arc:
/// p̃(z) = exp(−d_A(z)²/2σ²) + exp(−d_B(z)²/2σ²), d = distance to each arc. It decays in every direction,
/// so it is a real distribution with a finite log Z (by quadrature).
/// </summary>
internal static class TwoMoons
{
    public const double Radius = 2.0;
    public const double Sigma = 0.2;
    // Upper moon centered at (−1, −0.5) opening downwards; lower moon centered at (1, 0.5) opening upwards.
    private static readonly (double X, double Y) UpperCenter = (-1.0, -0.5);
    private static readonly (double X, double Y) LowerCenter = (1.0, 0.5);

    private static Tensor DistanceToHalfCircle(Tensor z, (double X, double Y) center, bool upper)
    {
        var dx = z[.., 0] - S(center.X);
        var dy = z[.., 1] - S(center.Y);
        var onArcSide = upper ? dy.ge(S(0)) : dy.le(S(0));
        var r = torch.sqrt(dx.Squared().Plus(dy.Squared()));
        var toArc = (r - S(Radius)).abs();
        var toLeftEnd = torch.sqrt(dx.Plus(Radius).Squared().Plus(dy.Squared()));
        var toRightEnd = torch.sqrt((dx - S(Radius)).Squared().Plus(dy.Squared()));
        return torch.where(onArcSide, toArc, torch.minimum(toLeftEnd, toRightEnd));
    }

    public static Tensor Energy(Tensor z)
    {
        var a = DistanceToHalfCircle(z, UpperCenter, upper: true);
        var b = DistanceToHalfCircle(z, LowerCenter, upper: false);
        var k = S(-0.5 / (Sigma * Sigma));
        return -torch.logaddexp(k * a.Squared(), k * b.Squared());
    }
}
