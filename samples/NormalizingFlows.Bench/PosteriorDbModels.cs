using System.Text.Json;
using Microsoft.ML.NormalizingFlows.Modeling;
using TorchSharp;
using Microsoft.ML.NormalizingFlows.Modeling.Constraints;
using Microsoft.ML.NormalizingFlows.Modeling.Distributions;
using Microsoft.ML.NormalizingFlows.Tensors;
using static Microsoft.ML.NormalizingFlows.Tensors.RootedScalars;



/// <summary>
/// posteriordb's eight_schools_noncentered, gp_regr and arK written with the model API, statement for statement
/// from their Stan code (the posteriordb JSON files: model text, data, reference moments, log-density test points):
/// no Jacobian is written by hand. Shared by the bench verb "posteriordb" and the tests (which link this file).
/// Sums are written with <c>Plus</c> and constants as <c>S(c)</c>, not <c>+</c> and bare numbers: the default recipe
/// runs its flow fits on two threads, and a temporary Scalar that one thread's garbage collection finalizes while the
/// other's libtorch call reads it aborts the process (README, "Scalars and the garbage collector").
/// </summary>
internal static class PosteriorDbModels
{
    public static readonly string[] Names = { "eight_schools_noncentered", "gp_regr", "arK" };

    /// <summary>The folder with the JSON files (set by the caller: the tests' Data/posteriordb, the bench's shared/data/posteriordb).</summary>
    public static string Directory { get; set; } = Path.Combine(AppContext.BaseDirectory, "Data", "posteriordb");

    public static JsonElement Load(string name)
    {
        var path = Path.Combine(Directory, name + ".json");
        if (!File.Exists(path)) throw new FileNotFoundException($"posteriordb file '{path}' is missing.", path);
        return JsonDocument.Parse(File.ReadAllText(path)).RootElement;
    }

    /// <summary>The reference posterior's mean and sd per parameter entry (constrained scale).</summary>
    public static (string Name, double Mean, double Sd)[] Reference(string name) =>
        Load(name).GetProperty("parameters").EnumerateArray()
            .Select(p => (p.GetProperty("name").GetString()!, p.GetProperty("ref_mean").GetDouble(), p.GetProperty("ref_sd").GetDouble())).ToArray();

    private static double[] Numbers(JsonElement data, string field) => data.GetProperty(field).EnumerateArray().Select(v => v.GetDouble()).ToArray();

    public static BayesianModel Create(string name) => name switch
    {
        "eight_schools_noncentered" => EightSchools(Load(name).GetProperty("data")),
        "gp_regr" => GaussianProcessRegression(Load(name).GetProperty("data")),
        "arK" => Autoregressive(Load(name).GetProperty("data")),
        _ => throw new ArgumentException($"No model '{name}'.", nameof(name)),
    };

    private static BayesianModel EightSchools(JsonElement data)
    {
        var y = Numbers(data, "y");
        return new BayesianModel("eight_schools_noncentered")
            .Parameter("theta_trans", y.Length)
            .Parameter("mu")
            .Parameter("tau", Constraint.Positive)
            .Data("y", y)
            .Data("sigma", Numbers(data, "sigma"))
            .LogDensity(m =>
            {
                var thetaTrans = m["theta_trans"];
                var mu = m["mu"];
                var tau = m["tau"];
                var theta = (thetaTrans * tau.unsqueeze(1)).Plus(mu.unsqueeze(1));
                return new Normal(0, 1).LogProb(thetaTrans).sum(1)
                       .Plus(new Normal(theta, m.Data("sigma")).LogProb(m.Data("y")).sum(1))
                       .Plus(new Normal(0, 5).LogProb(mu))
                       .Plus(new Cauchy(0, 5).LogProb(tau));
            });
    }

    private static BayesianModel GaussianProcessRegression(JsonElement data)
    {
        var x = Numbers(data, "x");
        var y = Numbers(data, "y");
        int n = x.Length;
        var squaredDistances = new double[n * n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) squaredDistances[i * n + j] = (x[i] - x[j]) * (x[i] - x[j]);
        return new BayesianModel("gp_regr")
            .Parameter("rho", Constraint.Positive)
            .Parameter("alpha", Constraint.Positive)
            .Parameter("sigma", Constraint.Positive)
            .Data("y", y)
            .Data("d2", squaredDistances, n, n)
            .LogDensity(m =>
            {
                var rho = m["rho"].reshape(-1, 1, 1);
                var alpha = m["alpha"].reshape(-1, 1, 1);
                var sigma = m["sigma"].reshape(-1, 1, 1);
                var eye = torch.eye(n, dtype: rho.dtype, device: rho.device);
                // gp_exp_quad_cov(x, alpha, rho) + diag_matrix(rep_vector(sigma, N)): sigma itself on the diagonal, as written.
                var cov = (alpha.Squared() * (-m.Data("d2") / (rho.Squared() * S(2.0))).exp()).Plus(sigma * eye);
                var l = Microsoft.ML.NormalizingFlows.Tensors.SafeLinalg.Cholesky(cov); // a non-positive-definite draw is dropped, not fatal
                return new Gamma(25, 4).LogProb(m["rho"]).Plus(new Normal(0, 2).LogProb(m["alpha"])).Plus(new Normal(0, 1).LogProb(m["sigma"]))
                       .Plus(new MultivariateNormal(torch.zeros(n, dtype: rho.dtype, device: rho.device), l).LogProb(m.Data("y")));
            });
    }

    private static BayesianModel Autoregressive(JsonElement data)
    {
        int k = data.GetProperty("K").GetInt32();
        var y = Numbers(data, "y");
        int rows = y.Length - k;
        var lags = new double[rows * k];
        for (int t = 0; t < rows; t++) for (int j = 0; j < k; j++) lags[t * k + j] = y[t + k - 1 - j]; // y[t − j] for j = 1 … K
        return new BayesianModel("arK")
            .Parameter("alpha")
            .Parameter("beta", k)
            .Parameter("sigma", Constraint.Positive)
            .Data("lags", lags, rows, k)
            .Data("y", y[k..])
            .LogDensity(m =>
            {
                var mu = m["alpha"].unsqueeze(1).Plus(m["beta"].matmul(m.Data("lags").t()));
                return new Normal(0, 10).LogProb(m["alpha"]).Plus(new Normal(0, 10).LogProb(m["beta"]).sum(1)).Plus(new Cauchy(0, 2.5).LogProb(m["sigma"]))
                       .Plus(new Normal(mu, m["sigma"].unsqueeze(1)).LogProb(m.Data("y")).sum(1));
            });
    }

    /// <summary>posteriordb's log-density test points: unconstrained coordinates (in declaration order) and lp with the Jacobian.</summary>
    public static (double[] Z, double LogDensity)[] TestPoints(string name) =>
        Load(name).GetProperty("log_density_test_points").GetProperty("points").EnumerateArray()
            .Select(p => (p.GetProperty("unconstrained").EnumerateObject().Select(v => v.Value.GetDouble()).ToArray(),
                          p.GetProperty("lp_unconstrained_with_jacobian").GetDouble()))
            .ToArray();
}
