using System.Globalization;
using Microsoft.ML.NormalizingFlows.Modeling;

/// <summary>
/// "mrp": the seeds' workflow on shared/data/mrp — the multilevel model fitted with the default recipe (and the
/// Gaussian baselines), poststratified over the census table, each state's estimate and the parameters compared
/// with the NUTS reference; the whole recipe's wall time against NUTS's.
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterMrp() => Add("mrp", "MRP vs NUTS: [flow|full-rank|mean-field|all] [--draws N] [--threads N] [--output DIR] [--iw K] [--flow-gradient standard|stl] [--flow-batch N] [--flow-steps N] [--flow-lr R] [--flow NAME] [--flow-layers K] [--flow-setting key=value]… [--serial]", Mrp);

    private static int Mrp(string[] args)
    {
        var families = new List<ApproximationFamily>();
        int draws = 4_000;
        string output = "mrp-output";
        var options = new PosteriorFitOptions();
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--draws": draws = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--threads": options.Threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                // Departures from the default recipe, for exploring it; the figures in docs/models.md use none of them.
                case "--iw": options.FlowObjective = new Microsoft.ML.NormalizingFlows.Training.ImportanceWeightedElboObjective(int.Parse(args[++i], CultureInfo.InvariantCulture), Microsoft.ML.NormalizingFlows.Training.GradientEstimator.DoublyReparameterized); break;
                case "--flow-gradient":
                    options.FlowObjective = new Microsoft.ML.NormalizingFlows.Training.ImportanceWeightedElboObjective(1, args[++i] switch
                    {
                        "standard" => Microsoft.ML.NormalizingFlows.Training.GradientEstimator.Standard,
                        "stl" => Microsoft.ML.NormalizingFlows.Training.GradientEstimator.StickingTheLanding,
                        var other => throw new FormatException($"unknown gradient '{other}' (standard or stl)"),
                    });
                    break;
                case "--flow-batch": options.FlowBatchSize = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--flow-steps": options.FlowIterations = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--flow-lr": options.FlowLearningRate = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--flow-setting":
                    var pair = args[++i].Split('=', 2);
                    (options.FlowSettings ??= new())[pair[0]] = pair[1];
                    break;
                case "--serial": options.ParallelFlowFits = false; break;
                case "--flow": options.Flow = args[++i]; break;
                case "--flow-layers": options.FlowLayers = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--output": output = args[++i]; break;
                case "flow": families.Add(ApproximationFamily.Flow); break;
                case "full-rank": families.Add(ApproximationFamily.FullRankGaussian); break;
                case "mean-field": families.Add(ApproximationFamily.MeanFieldGaussian); break;
                case "all": families.AddRange(new[] { ApproximationFamily.Flow, ApproximationFamily.FullRankGaussian, ApproximationFamily.MeanFieldGaussian }); break;
                default: throw new FormatException($"unknown argument '{args[i]}'");
            }
        }
        if (families.Count == 0) families.Add(ApproximationFamily.Flow);
        var data = MrpWorkflow.FindData();
        if (data is null) { Console.Error.WriteLine("error: shared/data/mrp was not found above this folder."); return 2; }
        MrpWorkflow.Run(data, families, options, draws, output, printStates: false);
        return 0;
    }
}
