// Synthetic data from a real-looking table with a table flow (mlContext.Transforms.TabularFlow).
//
// 1. Makes a "customers" table with mixed types: a skewed Double, a Single with missing values, an integer count,
//    a text category and a Boolean, all depending on each other and on the customer's segment.
// 2. Fits a table flow conditioned on Segment on 80 % of the rows (each column gets an encoding; see the printout).
// 3. Generates typed rows (CreateEnumerable<Customer>), compares them with the held-out 20 % (quality report with
//    KS/TV, Spearman gaps, violations and the distance-to-closest-record check), and writes a PNG of the marginals.
// 4. Generates rows for one segment only, scores unusual rows by log-likelihood, and saves/loads the model.
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.MLNet;
using Microsoft.ML.NormalizingFlows.Plotting;
using Microsoft.ML.NormalizingFlows.Tabular;

int iterations = args.Length > 0 ? int.Parse(args[0]) : 1500;
string png = args.Length > 1 ? args[1] : Path.Combine("out", "synthetic-data.png"); // out/ is git-ignored
const int n = 5000;

var rng = new Random(7);
double G() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
string[] segments = { "student", "retail", "business" };
var customers = Enumerable.Range(0, n).Select(_ =>
{
    double u = rng.NextDouble();
    string segment = u < 0.2 ? "student" : u < 0.75 ? "retail" : "business";
    float age = (float)Math.Clamp(segment == "student" ? 21 + 3 * G() : 45 + 12 * G(), 18, 90);
    double income = Math.Exp((segment == "business" ? 11.2 : segment == "retail" ? 10.5 : 9.4) + 0.01 * (age - 40) + 0.35 * G()) / 1000; // in k, log-normal
    int visits = (int)Math.Max(0, Math.Round(3 + 0.04 * income + 2 * G()));
    float spend = rng.NextDouble() < 0.04 ? float.NaN : (float)Math.Max(0, 0.05 * income + 0.8 * visits + G()); // 4 % not recorded
    return new Customer { Segment = segment, Age = age, Income = income, Visits = visits, Spend = spend, Member = visits + G() > 4 };
}).ToList();

var mlContext = new MLContext(seed: 1);
var split = mlContext.Data.TrainTestSplit(mlContext.Data.LoadFromEnumerable(customers), testFraction: 0.2, seed: 3);
var estimator = mlContext.Transforms.TabularFlow(new TabularFlowEstimator.Options
{
    ContextColumns = new[] { "Segment" },
    Flow = new ConditionalFlowSettings(Layers: 6, Hidden: 64, Blocks: 1),
    Iterations = iterations,
    Seed = 3,
    ReportEvery = Math.Max(1, iterations / 5),
    Progress = new Progress(p => Console.WriteLine($"  step {p.Iteration}/{p.Iterations}: mean log q {p.Elbo:F3} ({p.Elapsed.TotalSeconds:F0} s)")),
});
Console.WriteLine($"Fitting a table flow to {n * 4 / 5} rows ({iterations} steps)...");
var model = estimator.Fit(split.TrainSet);
Console.WriteLine("Column encodings:\n" + model.DescribeEncodings());

// Typed synthetic rows, compared with the held-out rows.
var synthetic = model.Generate(n);
var rows = mlContext.Data.CreateEnumerable<Customer>(synthetic, reuseRowObject: false).ToList();
Console.WriteLine("\nFirst synthetic rows:");
foreach (var r in rows.Take(5)) Console.WriteLine($"  {r}");
var report = TabularQuality.Compare(split.TestSet, synthetic, training: split.TrainSet,
    levelOrders: new Dictionary<string, string[]> { ["Segment"] = segments });
Console.WriteLine($"\nQuality against the held-out rows:\n{report}");

// Rows for one segment only (the model is conditioned on Segment).
var students = mlContext.Data.CreateEnumerable<Customer>(model.Generate(2000, new Dictionary<string, object> { ["Segment"] = "student" }), false).ToList();
var realStudents = customers.Where(c => c.Segment == "student").ToList();
Console.WriteLine($"Students: median income real {Median(realStudents.Select(c => c.Income))}k, synthetic {Median(students.Select(c => c.Income))}k; " +
    $"median age real {Median(realStudents.Select(c => (double)c.Age))}, synthetic {Median(students.Select(c => (double)c.Age))}");

// Unusual rows score low: a 20-year-old student earning 400k with 30 visits.
var odd = new Customer { Segment = "student", Age = 20, Income = 400, Visits = 30, Spend = 50, Member = true };
var scores = model.Transform(mlContext.Data.LoadFromEnumerable(customers.Take(1000).Append(odd))).GetColumn<float>("LogLikelihood").ToArray();
Console.WriteLine($"Log-likelihood: real rows median {Median(scores.Take(1000).Select(s => (double)s))}, the odd row {scores[^1]:F1}");

// Save and load like any ML.NET model; the loaded model generates the same rows.
Directory.CreateDirectory("out");
string zip = Path.Combine("out", "customers-flow.zip");
mlContext.Model.Save(model, split.TrainSet.Schema, zip);
var loaded = (TabularFlowTransformer)mlContext.Model.LoadUnwrapped(zip, out _);
var again = mlContext.Data.CreateEnumerable<Customer>(loaded.Generate(n), false).ToList();
Console.WriteLine($"Saved to {zip} and loaded: the same {n} rows = {rows.Zip(again).All(p => p.First.ToString() == p.Second.ToString())}");

TabularQualityPlot.Save(split.TestSet, synthetic, new[] { "Segment", "Age", "Income", "Visits", "Spend", "Member" }, png, "customers: held-out vs synthetic");
Console.WriteLine($"Wrote {Path.GetFullPath(png)}");
return 0;

static string Median(IEnumerable<double> values)
{
    var sorted = values.Where(v => !double.IsNaN(v)).OrderBy(v => v).ToArray();
    return sorted[sorted.Length / 2].ToString("F1");
}

internal sealed class Customer
{
    public string Segment { get; set; } = "";
    public float Age { get; set; }
    public double Income { get; set; }
    public int Visits { get; set; }
    public float Spend { get; set; }
    public bool Member { get; set; }
    public override string ToString() => $"{Segment,-8} age {Age,5:F1}  income {Income,6:F1}k  visits {Visits,2}  spend {(float.IsNaN(Spend) ? "  (missing)" : Spend.ToString("F2")),7}  member {Member}";
}

internal sealed class Progress(Action<Microsoft.ML.NormalizingFlows.Training.TrainingProgress> handler) : IProgress<Microsoft.ML.NormalizingFlows.Training.TrainingProgress>
{
    public void Report(Microsoft.ML.NormalizingFlows.Training.TrainingProgress value) => handler(value);
}
