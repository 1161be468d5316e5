using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Targets;

/// <summary>
/// The non-centred eight-schools posterior (posteriordb "eight_schools-eight_schools_noncentered"), written
/// by hand on the unconstrained scale z = (θ̃₁, …, θ̃₈, μ, log τ):
/// θ̃ⱼ ~ N(0, 1), μ ~ N(0, 5), τ ~ HalfCauchy(0, 5), yⱼ ~ N(μ + τθ̃ⱼ, σⱼ), plus the log-Jacobian log τ of
/// τ = exp(log τ). Every term keeps its normalizing constant and the half-Cauchy is written as the Cauchy
/// density (no truncation factor 2), which is the convention of posteriordb's log-density test points, so
/// values can be compared to those directly. The posterior's log Z (the evidence) is not known:
/// <see cref="Target.LogNormalizer"/> is null.
/// </summary>
public sealed class EightSchoolsTarget : Target
{
    private static readonly double[] Effects = { 28, 8, -3, 7, -1, 1, 18, 12 };
    private static readonly double[] StandardErrors = { 15, 10, 16, 11, 9, 11, 10, 18 };
    private readonly CachedConstant effects = new(Effects), standardErrors = new(StandardErrors);

    /// <summary>Prior sd of μ and scale of τ's half-Cauchy prior.</summary>
    private const double MuScale = 5, TauScale = 5;

    public EightSchoolsTarget() : base("eight-schools", Schools + 2) { }

    public override IReadOnlyList<string>? CoordinateNames => ParameterNames;

    /// <summary>J = 8 schools.</summary>
    public const int Schools = 8;

    /// <summary>The observed effects yⱼ.</summary>
    public static IReadOnlyList<double> Y => Effects;

    /// <summary>The effects' standard errors σⱼ.</summary>
    public static IReadOnlyList<double> Sigma => StandardErrors;

    /// <summary>The coordinates' names in posteriordb's spelling: theta_trans[1] … theta_trans[8], mu, log_tau.</summary>
    public static IReadOnlyList<string> ParameterNames { get; } =
        Enumerable.Range(1, Schools).Select(j => $"theta_trans[{j}]").Append("mu").Append("log_tau").ToArray();

    public override Tensor LogDensity(Tensor z)
    {
        var thetaTrans = z[.., ..Schools];
        var mu = z[.., Schools];
        var logTau = z[.., Schools + 1];
        var tau = logTau.exp();
        var y = effects.Like(z);
        var sigma = standardErrors.Like(z);
        var theta = mu.unsqueeze(1).Plus(tau.unsqueeze(1) * thetaTrans);
        double constants = -(2 * Schools + 1) * HalfLogTwoPi - StandardErrors.Sum(Math.Log) - Math.Log(MuScale) - Math.Log(Math.PI * TauScale);
        return (S(-0.5) * thetaTrans.Squared().sum(1)
                - S(0.5) * ((y - theta) / sigma).Squared().sum(1)
                - S(0.5) * (mu / S(MuScale)).Squared()
                - (S(2) * (logTau - S(Math.Log(TauScale)))).Softplus())   // log(1 + (τ/5)²), finite for any log τ
               .Plus(logTau)
               .Plus(constants);
    }
}
