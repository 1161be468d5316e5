using System.Globalization;
using Microsoft.ML.NormalizingFlows.Modeling;

// The seeds' MRP workflow with the model API (docs/models.md walks through it):
//   1. MrpModel.cs writes the multilevel logistic model: parameters by name with constraints, priors and the likelihood;
//   2. model.Fit() runs the default recipe (mode → full-rank Gaussian → normalizing flows), no per-model settings;
//   3. draws.Generate(MrpModel.Poststratify) poststratifies every draw over the census table;
//   4. MrpWorkflow prints each state's estimate and interval beside NUTS's and writes the picture.
// Usage: dotnet run -c Release --project samples/NormalizingFlows.Mrp -- [flow|full-rank|mean-field|all] [--draws N] [--output DIR]
var families = new List<ApproximationFamily>();
int draws = 4_000;
string output = "mrp-output";
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "flow": families.Add(ApproximationFamily.Flow); break;
        case "full-rank": families.Add(ApproximationFamily.FullRankGaussian); break;
        case "mean-field": families.Add(ApproximationFamily.MeanFieldGaussian); break;
        case "all": families.AddRange(new[] { ApproximationFamily.Flow, ApproximationFamily.FullRankGaussian, ApproximationFamily.MeanFieldGaussian }); break;
        case "--draws" when i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) && n >= 100: draws = n; i++; break;
        case "--output" when i + 1 < args.Length: output = args[++i]; break;
        default:
            Console.Error.WriteLine($"error: unknown or incomplete argument '{args[i]}'. Usage: [flow|full-rank|mean-field|all] [--draws N ≥ 100] [--output DIR]");
            return 2;
    }
}
if (families.Count == 0) families.Add(ApproximationFamily.Flow);
var data = MrpWorkflow.FindData();
if (data is null)
{
    Console.Error.WriteLine("error: shared/data/mrp (survey.csv, poststrat.csv and the NUTS reference) was not found above this folder.");
    return 2;
}
MrpWorkflow.Run(data, families, new PosteriorFitOptions(), draws, output, printStates: true);
return 0;
