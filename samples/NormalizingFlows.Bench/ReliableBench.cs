using Microsoft.ML.NormalizingFlows;
using Microsoft.ML.NormalizingFlows.Diagnostics;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>
/// "reliable": the reliable-VI demonstrations at larger settings than the tests. (1) a short planar fit on
/// ring: its fit report, and raw-q vs PSIS-reweighted moments against quadrature; (2) mean-field on a
/// correlated Gaussian trained by the ELBO vs IW-ELBO(M = 10): both bounds at the ELBO fit and the exact
/// forward KL of each q.
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterReliable() => Add("reliable", "PSIS vs raw moments (planar on ring) and ELBO vs IW-ELBO(10) (mean-field, ρ = 0.9). [ITERS] [K]", RunReliable);

    private static int RunReliable(string[] args)
    {
        int iterations = args.Length > 0 ? int.Parse(args[0]) : 2_000;
        int layers = args.Length > 1 ? int.Parse(args[1]) : 8;
        torch.set_num_threads(1);

        // (1) Short planar fit on ring.
        var ring = TargetGallery.Create("ring");
        var q = FlowFactory.Create("planar", 2, layers, seed: 0);
        var fit = VariationalTrainer.Fit(q, ring, new TrainerOptions { Iterations = iterations, BatchSize = 128, LearningRate = 2e-3, Seed = 0 });
        var report = FitReport.Create(q, ring, fit, 20_000, seed: 1);
        Console.WriteLine(report.Format());
        var truth = GridMoments(ring, new Box(-8, 8, -8, 8), 800);
        string[] names = { "E[z1²]", "E[z2²]", "E[|z|]" };
        Func<double[], double>[] moments = { z => z[0] * z[0], z => z[1] * z[1], z => Math.Sqrt(z[0] * z[0] + z[1] * z[1]) };
        double rawError = 0, psisError = 0;
        for (int i = 0; i < 3; i++)
        {
            var raw = report.Sample.Expectation(moments[i], reweighted: false);
            var psis = report.Sample.Expectation(moments[i]);
            rawError += Math.Abs(raw.Mean - truth[i]);
            psisError += Math.Abs(psis.Mean - truth[i]);
            Console.WriteLine($"ring {names[i]}: quadrature {truth[i]:F4}  raw q {raw}  PSIS {psis}");
        }
        Console.WriteLine($"ring planar K={layers} iters={iterations}: sum |error| raw q = {rawError:F4}, PSIS = {psisError:F4}");

        // (2) ELBO vs IW-ELBO(10) on a ρ = 0.9 Gaussian, same draws per step.
        const double rho = 0.9;
        var gaussian = Target.FromDelegate("correlated-gaussian(0.9)", 2,
            z => (z[.., 0].square() - 2 * rho * z[.., 0] * z[.., 1] + z[.., 1].square()).mul(-0.5 / (1 - rho * rho)),
            Math.Log(2 * Math.PI) + 0.5 * Math.Log(1 - rho * rho));
        var byElbo = new FlowDistribution(new DiagonalNormal(2));
        var byIw = new FlowDistribution(new DiagonalNormal(2));
        var options = new TrainerOptions { Iterations = iterations, BatchSize = 640, LearningRate = 0.02, Seed = 3 };
        VariationalTrainer.Fit(byElbo, gaussian, options);
        options.BatchSize = 64;
        options.Objective = new ImportanceWeightedElboObjective(10, GradientEstimator.DoublyReparameterized);
        VariationalTrainer.Fit(byIw, gaussian, options);
        using (torch.no_grad())
        {
            double elbo = new ImportanceWeightedElboObjective(1).Compute(byElbo, gaussian, 200_000, new Generator(5)).Elbo.ToDouble();
            double iw = new ImportanceWeightedElboObjective(10).Compute(byElbo, gaussian, 20_000, new Generator(6)).Elbo.ToDouble();
            Console.WriteLine($"gaussian rho=0.9, at the ELBO-trained q: log Z = {gaussian.LogNormalizer:F4}, ELBO = {elbo:F4}, IW-ELBO(10) = {iw:F4}");
        }
        Console.WriteLine($"forward KL(p||q): ELBO-trained = {ForwardKl(byElbo, rho):F4}, IW-ELBO(10)-trained = {ForwardKl(byIw, rho):F4}");
        return 0;
    }

    /// <summary>E[z1²], E[z2²], E[|z|] under the normalized target, by a midpoint grid.</summary>
    private static double[] GridMoments(Target target, Box box, int n)
    {
        using var noGrad = torch.no_grad();
        var xs = torch.linspace(box.MinX + box.Width / (2 * n), box.MaxX - box.Width / (2 * n), n, dtype: ScalarType.Float64);
        var ys = torch.linspace(box.MinY + box.Height / (2 * n), box.MaxY - box.Height / (2 * n), n, dtype: ScalarType.Float64);
        var grid = torch.stack(torch.meshgrid(new[] { xs, ys }, indexing: "ij"), -1).reshape(-1, 2);
        var logP = target.Evaluate(grid.to(ScalarType.Float32)).to(ScalarType.Float64);
        var w = (logP - logP.max()).exp();
        w = w / w.sum();
        return new[]
        {
            (w * grid[.., 0].square()).sum().item<double>(),
            (w * grid[.., 1].square()).sum().item<double>(),
            (w * grid.square().sum(1).sqrt()).sum().item<double>(),
        };
    }

    /// <summary>Exact KL(p‖q) for p = N(0, [[1, ρ], [ρ, 1]]) and a mean-field q.</summary>
    private static double ForwardKl(FlowDistribution q, double rho)
    {
        using var noGrad = torch.no_grad();
        var normal = (DiagonalNormal)q.Base;
        var m = normal.Location.to(ScalarType.Float64).data<double>().ToArray();
        var s = normal.Scale.to(ScalarType.Float64).data<double>().ToArray();
        double trace = 1 / (s[0] * s[0]) + 1 / (s[1] * s[1]);
        double mean = m[0] * m[0] / (s[0] * s[0]) + m[1] * m[1] / (s[1] * s[1]);
        return 0.5 * (trace + mean - 2 + 2 * Math.Log(s[0] * s[1]) - Math.Log(1 - rho * rho));
    }
}
