using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Transforms;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>
/// "seed-port": the anchor script (shared/bench/seed_planar_ring.py) transcribed line for line into TorchSharp:
/// per-layer parameters drawn from the global generator in the script's order, the in-place û projection,
/// the 1e-4 inside the log, base draws from the global generator. libtorch's CPU generator is PyTorch's, so
/// with the same seed this replays the anchor's random stream and its final KL seed by seed. With --library the
/// same initial values and draws go through the library's <see cref="PlanarFlow"/> instead, which separates
/// "our flow differs" from "our random stream differs" when the seed bench's KL differs from the anchor's.
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterSeedPort() => Add("seed-port",
        "The anchor transcribed into TorchSharp, replaying its random stream: exact KL per seed. [SEED=0] [ITERS=20000] [--library]", RunSeedPort);

    private static int RunSeedPort(string[] args)
    {
        bool library = args.Contains("--library");
        var positional = args.Where(a => a != "--library").ToArray();
        int seed = positional.Length > 0 ? int.Parse(positional[0], CultureInfo.InvariantCulture) : 0;
        int iterations = positional.Length > 1 ? int.Parse(positional[1], CultureInfo.InvariantCulture) : 20_000;
        const int layers = 32, batch = 128, dimension = 2;
        torch.set_num_threads(1);
        torch.manual_seed(seed);
        var target = TargetGallery.Create("ring");

        // The script's PlanarTransform.__init__: randn(...) then normal_(0, 0.1) on the same tensor, so each
        // parameter consumes two draws; order w, b, u per layer.
        Tensor Draw(params long[] shape) => torch.randn(shape).normal_(0, 0.1);
        var w = new TorchSharp.Modules.Parameter[layers];
        var b = new TorchSharp.Modules.Parameter[layers];
        var u = new TorchSharp.Modules.Parameter[layers];
        for (int k = 0; k < layers; k++)
        {
            w[k] = new TorchSharp.Modules.Parameter(Draw(1, dimension));
            b[k] = new TorchSharp.Modules.Parameter(Draw(1));
            u[k] = new TorchSharp.Modules.Parameter(Draw(1, dimension));
        }
        var flow = new PlanarFlow(dimension, layers);
        using (torch.no_grad())
        {
            var stacked = flow.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            stacked["w"].copy_(torch.cat(w.Select(p => (Tensor)p).ToArray(), 0));
            stacked["u"].copy_(torch.cat(u.Select(p => (Tensor)p).ToArray(), 0));
            stacked["b"].copy_(torch.cat(b.Select(p => (Tensor)p).ToArray(), 0));
        }
        var parameters = library ? flow.parameters().ToList() : w.Concat(b).Concat(u).ToList();
        using var optimizer = torch.optim.Adam(parameters, 6e-4);

        (Tensor Output, Tensor LogDet) Transcribed(Tensor z)
        {
            var logDet = torch.zeros(z.shape[0]);
            for (int k = 0; k < layers; k++)
            {
                using (torch.no_grad())
                {
                    // get_u_hat, in place and outside autograd, only when wᵀu < −1.
                    var wtu = torch.mm(u[k], w[k].T);
                    if (wtu.item<float>() < -1)
                        u[k].copy_(u[k] + (nn.functional.softplus(wtu) - 1 - wtu) * w[k] / w[k].square().sum());
                }
                var a = torch.mm(z, w[k].T) + b[k];
                var psi = (1 - a.tanh().square()) * w[k];
                logDet = logDet + torch.log(1e-4 + (1 + torch.mm(u[k], psi.T)).abs()).squeeze(0);
                z = z + u[k] * a.tanh();
            }
            return (z, logDet);
        }
        (Tensor Output, Tensor LogDet) Push(Tensor z) => library ? flow.Forward(z) : Transcribed(z);
        var baseDistribution = new StandardNormal(dimension); // the script's MultivariateNormal(0, I)

        var clock = Stopwatch.StartNew();
        for (int it = 1; it <= iterations; it++)
        {
            using var scope = torch.NewDisposeScope();
            var z0 = torch.zeros(batch, dimension).normal_(0, 1);
            var (z, logDet) = Push(z0);
            var loss = (baseDistribution.LogProb(z0) - target.Evaluate(z) - logDet).mean();
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }
        clock.Stop();
        using (torch.no_grad())
        {
            var z0 = torch.zeros(100_000, dimension).normal_(0, 1);
            var (z, logDet) = Push(z0);
            var terms = (baseDistribution.LogProb(z0) - logDet - target.Evaluate(z)).to(ScalarType.Float64);
            double kl = terms.mean().item<double>() + target.LogNormalizer!.Value;
            double se = terms.std().item<double>() / Math.Sqrt(100_000);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"seed-port{(library ? " --library" : "")}: seed={seed} iters={iterations} seconds={clock.Elapsed.TotalSeconds:F1} kl={kl:F4}±{se:F4} (100,000 draws)"));
        }
        return 0;
    }
}
