namespace Microsoft.ML.NormalizingFlows;

/// <summary>
/// A recipe for a flow's architecture: a <see cref="FlowFactory"/> preset, the dimension, the number of
/// layers, the initialization seed and, optionally, preset settings (string → string, e.g. "hidden" = "64";
/// see <see cref="FlowFactory.SettingNames"/>). Together with the trained weights it fully determines a
/// fitted flow. Plain data: serializes with System.Text.Json as is.
/// A flow assembled with <see cref="FlowBuilder"/> has preset <see cref="FlowBuilder.CustomPreset"/>, its builder
/// calls in <see cref="Steps"/> (<see cref="Layers"/> = their count) and its base in <see cref="Settings"/>.
/// </summary>
public sealed record FlowSpec(string Preset, int Dimension, int Layers, long Seed, IReadOnlyDictionary<string, string>? Settings = null,
    IReadOnlyList<FlowStep>? Steps = null);
