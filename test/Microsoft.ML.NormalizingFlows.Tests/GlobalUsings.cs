// Namespaces nearly every test file reads, imported once for the whole test project.
global using Microsoft.ML.NormalizingFlows.Distributions;
global using Microsoft.ML.NormalizingFlows.Targets;
global using Microsoft.ML.NormalizingFlows.Training;
global using Microsoft.ML.NormalizingFlows.Transforms;
global using TorchSharp;
global using static TorchSharp.torch;
global using static Microsoft.ML.NormalizingFlows.Tests.FlowTestHelpers;
