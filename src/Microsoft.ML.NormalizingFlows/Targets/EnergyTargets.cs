using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Targets;

/// <summary>
/// The 2-D energies of Rezende &amp; Mohamed (2015) as the seeds use them, p̃ = exp(−U).
/// Mixtures are computed with log-sum-exp (no epsilon inside the log).
/// </summary>
internal static class Energies
{
    private static Tensor W1(Tensor z1) => torch.sin(z1 * S(2 * Math.PI / 4));
    private static Tensor W2(Tensor z1) => S(3) * torch.exp(S(-0.5) * ((z1 - S(1)) / S(0.6)).Squared());
    private static Tensor W3(Tensor z1) => S(3) * torch.sigmoid((z1 - S(1)) / S(0.3));

    private static Tensor LogSumExp2(Tensor a, Tensor b) => torch.logaddexp(a, b);

    public static Tensor U1(Tensor z)
    {
        var z1 = z[.., 0];
        var radial = S(0.5) * ((z.norm(1) - S(2)) / S(0.4)).Squared();
        return radial - LogSumExp2(S(-0.5) * ((z1 - S(2)) / S(0.6)).Squared(), S(-0.5) * (z1.Plus(2) / S(0.6)).Squared());
    }

    public static Tensor U2(Tensor z) => S(0.5) * ((z[.., 1] - W1(z[.., 0])) / S(0.4)).Squared();

    public static Tensor U3(Tensor z)
    {
        var z1 = z[.., 0];
        var d = z[.., 1] - W1(z1);
        return -LogSumExp2(S(-0.5) * (d / S(0.35)).Squared(), S(-0.5) * (d.Plus(W2(z1)) / S(0.35)).Squared());
    }

    public static Tensor U4(Tensor z)
    {
        var z1 = z[.., 0];
        var d = z[.., 1] - W1(z1);
        return -LogSumExp2(S(-0.5) * (d / S(0.4)).Squared(), S(-0.5) * (d.Plus(W3(z1)) / S(0.35)).Squared());
    }

    /// <summary>
    /// The seed's "ring" (also seed 002's p_z): radius 4, two lobes at z1 = ±2:
    /// U = ½((‖z‖ − 4)/0.4)² − log(e^{−½((z1 − 2)/0.8)²} + e^{−½((z1 + 2)/0.8)²}).
    /// Expanding the squares, the lobes are −(z1² + 4)/1.28 + log(e^{3.125 z1} + e^{−3.125 z1}), so
    /// U = 3.125 (‖z‖ − 4)² + 0.78125 z1² + 3.125 − logaddexp(3.125 z1, −3.125 z1): ten tensor operations instead of
    /// sixteen (the seed experiment's step is short enough for that to show).
    /// </summary>
    public static Tensor Ring(Tensor z)
    {
        var z1 = z[.., 0];
        var offRadius = z.norm(1) - S(4);
        var slope = z1 * S(3.125);
        return LogSumExp2(slope, slope.neg()).neg_()
            .addcmul_(offRadius, offRadius, S(3.125))
            .addcmul_(z1, z1, S(0.78125))
            .add_(S(3.125), S(1));
    }

    /// <summary>
    /// Soft wall that makes U2–U4 proper: zero for |z1| ≤ 4 (the picture is unchanged there), then
    /// ½((|z1| − 4)/0.2)², a Gaussian-tailed decay.
    /// </summary>
    public static Tensor Wall(Tensor z) => S(0.5) * ((z[.., 0].abs() - S(ProperWallStart)).relu() / S(ProperWallWidth)).Squared();

    public const double ProperWallStart = 4.0;
    public const double ProperWallWidth = 0.2;
}

/// <summary>A 2-D target defined by an energy U, p̃ = exp(−U), with log Z by quadrature over its support.</summary>
public sealed class EnergyTarget : Target
{
    private readonly Func<Tensor, Tensor> energy;
    private readonly Box support;
    private readonly bool isProper;
    private readonly Lazy<double> logZ;

    internal EnergyTarget(string name, Func<Tensor, Tensor> energy, Box support, bool isProper, string description) : base(name, 2)
    {
        this.energy = energy;
        this.support = support;
        this.isProper = isProper;
        Description = description;
        logZ = new Lazy<double>(() => Quadrature.LogNormalizer(this, support, QuadraturePoints(support)));
    }

    /// <summary>What the target is, in a sentence (shown by the CLI).</summary>
    public string Description { get; }

    public override Tensor LogDensity(Tensor z) => -energy(z);

    public override bool IsProper => isProper;

    public override Box? Support => support;

    /// <summary>
    /// For proper targets: log Z over the plane (the support box holds all but a negligible tail).
    /// For the seeds' improper U2–U4: log Z with z1 restricted to [−4, 4], the convention of
    /// <c>shared/bench/logz_reference.py</c>; use the "-proper" variants for KL figures.
    /// </summary>
    public override double? LogNormalizer => logZ.Value;

    private static int QuadraturePoints(Box box) => (int)Math.Ceiling(Math.Max(box.Width, box.Height) / 0.01);
}
