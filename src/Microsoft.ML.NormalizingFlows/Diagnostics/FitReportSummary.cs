using System.Text.Json;

namespace Microsoft.ML.NormalizingFlows.Diagnostics;

/// <summary>
/// The numbers and verdict of a <see cref="FitReport"/> without its draws: what a saved model keeps, so that a
/// loaded model still says whether its fit can be trusted (and why). <see cref="Text"/> is the report as printed.
/// </summary>
public sealed record FitReportSummary(
    string TargetName,
    FitVerdict Verdict,
    IReadOnlyList<string> Reasons,
    double ParetoK,
    IReadOnlyList<double> ReplicateParetoK,
    double VerdictParetoK,
    double KThreshold,
    double EffectiveSampleSize,
    int Samples,
    int NonFiniteDraws,
    double Elbo,
    double ElboStandardError,
    double? Kl,
    double LogRatioSpread,
    string Text)
{
    private static readonly JsonSerializerOptions Json = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    public override string ToString() => Text;

    internal string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Reads a summary written by <see cref="ToJson"/>; a malformed one is an <see cref="InvalidDataException"/>.</summary>
    internal static FitReportSummary FromJson(string json, string source)
    {
        try
        {
            return JsonSerializer.Deserialize<FitReportSummary>(json, Json) ?? throw new InvalidDataException($"{source}: the fit report is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: the fit report is malformed ({e.Message}).", e);
        }
    }
}
