// Posterior sampling with a normalizing flow in ML.NET.
//
// Model: y_i ~ Normal(μ, σ), i = 1..n, priors μ ~ Normal(0, 10), log σ ~ Normal(0, 2).
// Parameters θ = (μ, log σ). The unnormalized log posterior is written with TorchSharp tensor operations
// (so gradients flow), wrapped as a Target, and fitted by variational inference. The fitted transformer
// turns any IDataView into one posterior draw per row; Generate(N) draws N rows directly.
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.MLNet;
using Microsoft.ML.NormalizingFlows.Targets;
using TorchSharp;

int iterations = args.Length > 0 ? int.Parse(args[0]) : 3000;
var rng = new Random(42);
double[] y = Enumerable.Range(0, 30).Select(_ => 3.0 + 1.5 * Gaussian(rng)).ToArray();
var data = torch.tensor(y);

var posterior = Target.FromDelegate("normal-mean-scale", 2, theta =>
{
    var mu = theta[.., 0];
    var logSigma = theta[.., 1];
    // Σ_i log N(y_i | μ, σ) up to a constant, for every row of θ at once: [B, 1] against [n].
    var resid = (data.to(theta.dtype).unsqueeze(0) - mu.unsqueeze(1)) / logSigma.exp().unsqueeze(1);
    var logLik = -0.5 * resid.square().sum(1) - y.Length * logSigma;
    var logPrior = -0.5 * (mu / 10).square() - 0.5 * (logSigma / 2).square();
    return logLik + logPrior;
});

var mlContext = new MLContext(seed: 1);
mlContext.Log += (_, e) => { if (e.Source.Contains("NormalizingFlow") && e.Message.Contains("step")) Console.WriteLine($"  [log] {e.Message}"); };
var estimator = mlContext.Transforms.NormalizingFlow(posterior, new NormalizingFlowEstimator.Options
{
    Flow = "planar",
    Layers = 8,
    BaseFamily = FlowBaseFamily.DiagonalNormal, // a learnable location and scale: the flow only has to bend it
    Iterations = iterations,
    BatchSize = 128,
    LearningRate = 3e-3,
    ReportEvery = iterations / 5,
    Seed = 7,
});
// VI trains against the target alone: the training data only provides a schema (here: no columns, no rows).
var model = estimator.Fit(mlContext.Data.CreateEmptyRows(0));

// 10,000 posterior draws as an IDataView, computed lazily in blocks.
IDataView draws = model.Generate(10_000);
var preview = draws.Preview(5);
Console.WriteLine("\nFirst rows (Sample = (μ, log σ)):");
foreach (var row in preview.RowView)
    Console.WriteLine("  " + string.Join("  ", row.Values.Select(kv => $"{kv.Key}={Format(kv.Value)}")));

var rows = mlContext.Data.CreateEnumerable<Draw>(draws, reuseRowObject: false).ToList();
double Mean(Func<Draw, double> f) => rows.Average(f);
// Self-normalized importance weights correct the small bias of q.
var w = rows.Select(r => (double)r.LogWeight).ToArray();
double maxW = w.Max();
var weights = w.Select(v => Math.Exp(v - maxW)).ToArray();
double Weighted(Func<Draw, double> f) => rows.Select((r, i) => weights[i] * f(r)).Sum() / weights.Sum();
double ess = Math.Pow(weights.Sum(), 2) / weights.Select(v => v * v).Sum();

double yBar = y.Average(), s = Math.Sqrt(y.Sum(v => (v - yBar) * (v - yBar)) / (y.Length - 1));
Console.WriteLine($"\nData: n = {y.Length}, mean = {yBar:F3}, sd = {s:F3}");
Console.WriteLine($"Posterior mean of μ:       q {Mean(r => r.Sample[0]):F3}   importance-weighted {Weighted(r => r.Sample[0]):F3}");
Console.WriteLine($"Posterior mean of σ:       q {Mean(r => Math.Exp(r.Sample[1])):F3}   importance-weighted {Weighted(r => Math.Exp(r.Sample[1])):F3}");
Console.WriteLine($"Posterior sd of μ:         q {Sd(rows.Select(r => (double)r.Sample[0])):F3}   (≈ s/√n = {s / Math.Sqrt(y.Length):F3})");
Console.WriteLine($"Importance sampling ESS:   {ess:F0} of {rows.Count} ({100 * ess / rows.Count:F0}%)");

// Persistence: the target is code and does not travel in the zip; re-bind it after loading.
string path = Path.Combine(Path.GetTempPath(), "posterior-flow.zip");
mlContext.Model.Save(model, mlContext.Data.LoadFromEnumerable(new[] { new Dummy() }).Schema, path);
var loaded = mlContext.Model.Load(path, out _);
var logWBefore = loaded.Transform(mlContext.Data.CreateEmptyRows(3)).GetColumn<float>("LogWeight").ToArray();
NormalizingFlowTransformer.BindTarget(loaded, posterior);
var logWAfter = loaded.Transform(mlContext.Data.CreateEmptyRows(3)).GetColumn<float>("LogWeight").ToArray();
Console.WriteLine($"\nLoaded from {path}: LogWeight before re-binding [{string.Join(", ", logWBefore)}], after [{string.Join(", ", logWAfter.Select(v => v.ToString("F3")))}]");
return 0;

static double Gaussian(Random r) => Math.Sqrt(-2 * Math.Log(1 - r.NextDouble())) * Math.Cos(2 * Math.PI * r.NextDouble());
static double Sd(IEnumerable<double> values) { var a = values.ToArray(); double m = a.Average(); return Math.Sqrt(a.Sum(v => (v - m) * (v - m)) / (a.Length - 1)); }
static string Format(object value) => value switch
{
    VBuffer<float> v => "(" + string.Join(", ", v.DenseValues().Select(x => x.ToString("F3"))) + ")",
    float f => f.ToString("F3"),
    _ => value?.ToString() ?? "",
};

internal sealed class Draw
{
    [VectorType(2)] public float[] Sample { get; set; } = Array.Empty<float>();
    public float LogQ { get; set; }
    public float LogP { get; set; }
    public float LogWeight { get; set; }
}

internal sealed class Dummy { public float Unused { get; set; } }
