namespace Microsoft.ML.NormalizingFlows.Tests.Training;

/// <summary>Gaussian targets with exact answers, and helpers to set a Gaussian family's parameters.</summary>
internal static class GaussianFixtures
{
    /// <summary>N(0, [[1, ρ], [ρ, 1]]), unnormalized, with its exact log Z = log 2π + ½ log(1 − ρ²).</summary>
    public static Target Correlated(double rho) => Target.FromDelegate($"correlated-gaussian(rho={rho})", 2, z =>
        {
            var z1 = z[.., 0];
            var z2 = z[.., 1];
            return (z1.square() - 2 * rho * z1 * z2 + z2.square()).mul(-0.5 / (1 - rho * rho));
        }, Math.Log(2 * Math.PI) + 0.5 * Math.Log(1 - rho * rho));

    /// <summary>N(μ, diag σ²), unnormalized, with its exact log Z.</summary>
    public static Target Diagonal(double[] mean, double[] scale) => Target.FromDelegate("diagonal-gaussian", mean.Length, z =>
        {
            var mu = torch.tensor(mean, dtype: z.dtype, device: z.device);
            var sigma = torch.tensor(scale, dtype: z.dtype, device: z.device);
            return ((z - mu) / sigma).square().sum(1).mul(-0.5);
        }, 0.5 * mean.Length * Math.Log(2 * Math.PI) + scale.Sum(Math.Log));

    /// <summary>Overwrites a named parameter (e.g. "loc", "logScale", "offDiagonal", "logDiagonal").</summary>
    public static void Set(nn.Module module, string name, double[] values)
    {
        using var noGrad = torch.no_grad();
        var parameter = module.named_parameters().Single(p => p.name == name).parameter;
        parameter.copy_(torch.tensor(values, dtype: parameter.dtype).reshape(parameter.shape));
    }

    /// <summary>Mean and standard deviations of a mean-field q.</summary>
    public static (double[] Mean, double[] Scale) Moments(DiagonalNormal q)
    {
        using var noGrad = torch.no_grad();
        return (q.Location.to(ScalarType.Float64).data<double>().ToArray(), q.Scale.to(ScalarType.Float64).data<double>().ToArray());
    }

    /// <summary>Exact KL(p ‖ q) for p = N(0, [[1, ρ], [ρ, 1]]) and q = N(m, diag s²): the forward (mass-covering) KL.</summary>
    public static double ForwardKlFromCorrelated(double rho, double[] m, double[] s)
    {
        double traceTerm = 1 / (s[0] * s[0]) + 1 / (s[1] * s[1]);
        double meanTerm = m[0] * m[0] / (s[0] * s[0]) + m[1] * m[1] / (s[1] * s[1]);
        double logDetQ = 2 * (Math.Log(s[0]) + Math.Log(s[1]));
        double logDetP = Math.Log(1 - rho * rho);
        return 0.5 * (traceTerm + meanTerm - 2 + logDetQ - logDetP);
    }
}
