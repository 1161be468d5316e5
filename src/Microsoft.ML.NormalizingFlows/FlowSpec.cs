namespace Microsoft.ML.NormalizingFlows;

/// <summary>
/// A recipe for a flow's architecture: a <see cref="FlowFactory"/> preset, the dimension, the number of
/// layers and the initialization seed. Together with the trained weights it fully determines a fitted flow.
/// </summary>
public sealed record FlowSpec(string Preset, int Dimension, int Layers, long Seed);
