// Imported once for the whole library: tensor helpers, and S(constant) for scalars that are never finalized
// (see Tensors/RootedScalars.cs for why every constant in a tensor expression goes through it).
global using Microsoft.ML.NormalizingFlows.Tensors;
global using static Microsoft.ML.NormalizingFlows.Tensors.RootedScalars;
global using Microsoft.ML.NormalizingFlows.Platform;
