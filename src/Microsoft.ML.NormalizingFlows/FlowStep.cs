namespace Microsoft.ML.NormalizingFlows;

/// <summary>
/// One step of a <see cref="FlowBuilder"/> recipe: the builder call (<see cref="Kind"/>, e.g. "spline-coupling")
/// and its arguments as culture-invariant strings (e.g. "mask" = "1100", "bins" = "8"). A custom flow's
/// <see cref="FlowSpec.Steps"/> lists them in order, so a saved custom flow can be rebuilt and its weights loaded.
/// </summary>
public sealed record FlowStep(string Kind, IReadOnlyDictionary<string, string>? Arguments = null);
