// Synthetic data with a normalizing flow in ML.NET (density estimation).
//
// 1. Generates a small "customers" table with skewed, correlated and nonlinear columns.
// 2. Pipeline: Concatenate the numeric columns → NormalizingFlowDensity (maximum likelihood, streamed
//    minibatches) — the flow standardizes internally, so generated rows come out on the original scale.
// 3. Draws as many synthetic rows, prints marginal means/sds and correlations real vs synthetic, and
//    writes a PNG of two scatter plots (real | synthetic).
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.MLNet;

int iterations = args.Length > 0 ? int.Parse(args[0]) : 1000;
string flow = args.Length > 1 ? args[1] : "realnvp";
string png = args.Length > 2 ? args[2] : Path.Combine("out", "synthetic-data.png"); // out/ is git-ignored
const int n = 5000;
string[] names = { "Age", "Income", "Spend", "Visits" };

var rng = new Random(7);
double G() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
var customers = Enumerable.Range(0, n).Select(_ =>
{
    double age = 20 + 45 * rng.NextDouble();                                   // uniform 20–65
    double income = Math.Exp(10.3 + 0.01 * (age - 40) + 0.35 * G()) / 1000;   // log-normal, in k, grows with age
    double spend = 0.08 * income + 0.002 * Math.Pow(age - 40, 2) + 1.0 * G(); // nonlinear in age
    double visits = Math.Max(0, 6 + 0.15 * spend + 1.5 * G());
    return new Customer { Age = (float)age, Income = (float)income, Spend = (float)spend, Visits = (float)visits };
}).ToList();

var mlContext = new MLContext(seed: 1);
var real = mlContext.Data.LoadFromEnumerable(customers);
var pipeline = mlContext.Transforms.Concatenate("Features", names)
    .Append(mlContext.Transforms.NormalizingFlowDensity(new NormalizingFlowEstimator.Options
    {
        Flow = flow,
        Layers = 6,
        FlowSettings = new() { ["hidden"] = "32" },
        Threads = 1,
        Iterations = iterations,
        BatchSize = 256,
        LearningRate = 2e-3,
        LearningRateDecay = Math.Pow(0.05, 1.0 / iterations),
        ReportEvery = Math.Max(1, iterations / 5),
        Seed = 3,
        Progress = new Progress(p => Console.WriteLine($"  step {p.Iteration}/{p.Iterations}: mean log-likelihood {p.Elbo:F3}")),
    }));
Console.WriteLine($"Fitting '{flow}' to {n} rows × {names.Length} columns...");
var model = pipeline.Fit(real);
var flowModel = NormalizingFlowTransformer.FindAll(model).Single();

// n synthetic rows, drawn directly (row ids 0..n−1: the same model and seed always give the same rows).
float[][] synthetic = flowModel.Generate(n).GetColumn<float[]>("Sample").ToArray();
float[][] observed = customers.Select(c => new[] { c.Age, c.Income, c.Spend, c.Visits }).ToArray();

Console.WriteLine($"\n{"column",-8} {"real mean",10} {"synth mean",11} {"real sd",9} {"synth sd",9}");
for (int j = 0; j < names.Length; j++)
    Console.WriteLine($"{names[j],-8} {Mean(observed, j),10:F3} {Mean(synthetic, j),11:F3} {Sd(observed, j),9:F3} {Sd(synthetic, j),9:F3}");
Console.WriteLine("\nCorrelations: real / synthetic");
Console.WriteLine($"{"",-8}" + string.Concat(names.Select(c => $"{c,16}")));
double maxDiff = 0;
for (int i = 0; i < names.Length; i++)
{
    Console.Write($"{names[i],-8}");
    for (int j = 0; j < names.Length; j++)
    {
        double a = Corr(observed, i, j), b = Corr(synthetic, i, j);
        maxDiff = Math.Max(maxDiff, Math.Abs(a - b));
        Console.Write($"{a,8:F3}/{b,-7:F3}");
    }
    Console.WriteLine();
}
Console.WriteLine($"Largest correlation difference: {maxDiff:F3}");

// Held-out check: average log q of fresh real rows under the flow.
var fresh = mlContext.Data.LoadFromEnumerable(customers.Take(1000));
var scored = flowModel.ScoreLogQ(mlContext.Transforms.Concatenate("Features", names).Fit(fresh).Transform(fresh), "Features");
Console.WriteLine($"Average log q of real rows: {scored.GetColumn<float>("LogQ").Average():F3}");

try
{
    var plot = new ScottPlot.Plot();
    void Scatter(float[][] rows, string label, ScottPlot.Color color)
    {
        var s = plot.Add.ScatterPoints(rows.Select(r => (double)r[0]).ToArray(), rows.Select(r => (double)r[2]).ToArray(), color.WithAlpha(0.35));
        s.MarkerSize = 3;
        s.LegendText = label;
    }
    Scatter(observed, "real", ScottPlot.Colors.SteelBlue);
    Scatter(synthetic, $"synthetic ({flow})", ScottPlot.Colors.OrangeRed);
    plot.Title("Spend vs Age: real and synthetic rows");
    plot.XLabel("Age");
    plot.YLabel("Spend");
    plot.ShowLegend();
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(png))!);
    plot.SavePng(png, 900, 600);
    Console.WriteLine($"Wrote {Path.GetFullPath(png)}");
}
catch (Exception e) when (e is DllNotFoundException or TypeInitializationException)
{
    Console.WriteLine($"(PNG skipped: the plotting library could not load its native part: {e.Message})");
}
return 0;

static double Mean(float[][] rows, int j) => rows.Average(r => (double)r[j]);
static double Sd(float[][] rows, int j) { double m = Mean(rows, j); return Math.Sqrt(rows.Sum(r => (r[j] - m) * (r[j] - m)) / (rows.Length - 1)); }
static double Corr(float[][] rows, int i, int j)
{
    double mi = Mean(rows, i), mj = Mean(rows, j);
    return rows.Sum(r => (r[i] - mi) * (r[j] - mj)) / ((rows.Length - 1) * Sd(rows, i) * Sd(rows, j));
}

internal sealed class Customer
{
    public float Age { get; set; }
    public float Income { get; set; }
    public float Spend { get; set; }
    public float Visits { get; set; }
}

internal sealed class Progress(Action<Microsoft.ML.NormalizingFlows.Training.TrainingProgress> handler) : IProgress<Microsoft.ML.NormalizingFlows.Training.TrainingProgress>
{
    public void Report(Microsoft.ML.NormalizingFlows.Training.TrainingProgress value) => handler(value);
}
