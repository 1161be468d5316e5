using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.MLNet;

// Usage: ModelRoundTrip MODEL.zip ROWS OUTPUT.bin
// Loads the model in this fresh process, transforms ROWS empty rows (a density model: generates ROWS rows and
// scores them), and writes every float of every Single / vector-of-Single output column (in schema order) to
// OUTPUT.bin. Prints what it loaded.
if (args.Length != 3)
{
    Console.Error.WriteLine("Usage: ModelRoundTrip MODEL.zip ROWS OUTPUT.bin");
    return 2;
}
var mlContext = new MLContext(seed: 1);
ITransformer model;
DataViewSchema inputSchema;
try
{
    model = mlContext.Model.Load(args[0], out inputSchema);
}
catch (Exception e)
{
    Console.WriteLine($"LOAD-FAILED {e.GetType().FullName}: {e.Message}");
    return 3;
}
foreach (var flow in NormalizingFlowTransformer.FindAll(model))
    Console.WriteLine($"FLOW {flow.GetType().FullName} mode={flow.Mode} d={flow.Dimension} target={(flow.Target?.Name ?? "none")} names={flow.Names}");
var density = model as NormalizingFlowTransformer is { Mode: FlowFitMode.DensityEstimation } d ? d : null;
var output = density is null
    ? model.Transform(mlContext.Data.CreateEmptyRows(long.Parse(args[1])))
    : density.ScoreLogQ(density.Generate(long.Parse(args[1])), "Sample", "Score");
using var file = new BinaryWriter(File.Create(args[2]));
foreach (var column in output.Schema)
{
    if (column.IsHidden) continue;
    Console.WriteLine($"COLUMN {column.Name} {column.Type}");
    if (column.Type is VectorDataViewType { ItemType: NumberDataViewType { RawType: var t } } && t == typeof(float))
        foreach (var row in output.GetColumn<float[]>(column)) foreach (var v in row) file.Write(v);
    else if (column.Type == NumberDataViewType.Single)
        foreach (var v in output.GetColumn<float>(column)) file.Write(v);
}
return 0;
