namespace Microsoft.ML.NormalizingFlows;

/// <summary>
/// A recipe for a flow's architecture: a <see cref="FlowFactory"/> preset, the dimension, the number of
/// layers, the initialization seed and, optionally, preset settings (string → string, e.g. "hidden" = "64";
/// see <see cref="FlowFactory.SettingNames"/>). Together with the trained weights it fully determines a
/// fitted flow. Plain data: serializes with System.Text.Json as is.
/// </summary>
public sealed record FlowSpec(string Preset, int Dimension, int Layers, long Seed, IReadOnlyDictionary<string, string>? Settings = null);
