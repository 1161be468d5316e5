using System.Globalization;
using System.Text;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;

namespace Microsoft.ML.NormalizingFlows.Diagnostics;

/// <summary>Whether a fitted q can be trusted.</summary>
public enum FitVerdict
{
    /// <summary>k̂ &lt; 0.5 and nothing else wrong: q itself is a good approximation.</summary>
    Reliable,

    /// <summary>0.5 ≤ k̂ ≤ min(1 − 1/log10 S, 0.7): use PSIS-reweighted expectations, not raw draws of q.</summary>
    UsableWithImportanceWeighting,

    /// <summary>k̂ above the threshold, divergence, or a target that is often non-finite: do not use.</summary>
    NotReliable,
}

/// <summary>
/// What a fit produced and whether to trust it: final ELBO ± se (and the exact KL when log Z is known),
/// PSIS k̂ against its sample-size-aware threshold, the effective sample size, training statistics and a
/// verdict with its reasons. <see cref="Format"/> (and <see cref="ToString"/>) prints it.
/// </summary>
public sealed class FitReport
{
    /// <summary>Above this fraction of non-finite draws the fit is not reliable; any at all rules out "reliable".</summary>
    public const double MaxNonFiniteFraction = 0.01;

    /// <summary>Below this k̂, q itself is trusted (Yao et al. 2018).</summary>
    public const double ReliableK = 0.5;

    private FitReport(string targetName, ImportanceSample sample, FitResult? fit, double? logNormalizer)
    {
        TargetName = targetName;
        Sample = sample;
        Fit = fit;
        Elbo = sample.Elbo();
        Kl = logNormalizer is double logZ && double.IsFinite(Elbo.Mean) ? logZ - Elbo.Mean : null;
        var psis = sample.Psis;
        ParetoK = psis.ParetoK;
        KThreshold = psis.KThreshold;
        EffectiveSampleSize = psis.EffectiveSampleSize;
        (Verdict, Reasons) = Judge();
    }

    public string TargetName { get; }

    /// <summary>The draws the diagnostics used (reuse them for PSIS-weighted expectations or resampling).</summary>
    public ImportanceSample Sample { get; }

    /// <summary>The training run, when the report was made from one.</summary>
    public FitResult? Fit { get; }

    public WeightedEstimate Elbo { get; }

    /// <summary>KL(q‖p) = log Z − ELBO when the target's log Z is known.</summary>
    public double? Kl { get; }

    public double ParetoK { get; }
    public double KThreshold { get; }
    public double EffectiveSampleSize { get; }
    public int Samples => Sample.Count;
    public int NonFiniteDraws => Sample.NonFiniteDraws;
    public FitVerdict Verdict { get; }

    /// <summary>Why the verdict is what it is (and any notes), in plain words.</summary>
    public IReadOnlyList<string> Reasons { get; }

    public bool Cancelled => Fit?.Status == FitStatus.Cancelled;

    /// <summary>Draws S points from q (fixed seed), runs PSIS and judges the fit.</summary>
    public static FitReport Create(FlowDistribution q, Target target, FitResult? fit = null, int samples = 10_000, long seed = 20_240_101)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(target);
        return new FitReport(target.Name, ImportanceSample.Draw(q, target, samples, seed), fit, target.LogNormalizer);
    }

    /// <summary>Judges given draws (e.g. from a sampler other than this library's).</summary>
    public static FitReport Create(ImportanceSample sample, string targetName, FitResult? fit = null, double? logNormalizer = null)
    {
        ArgumentNullException.ThrowIfNull(sample);
        return new FitReport(targetName ?? "target", sample, fit, logNormalizer);
    }

    private (FitVerdict, string[]) Judge()
    {
        var notReliable = new List<string>();
        var caveats = new List<string>();
        var notes = new List<string>();
        if (Fit?.Status == FitStatus.Diverged)
            notReliable.Add($"training diverged: {Fit.DivergenceReason}; the best parameters (iteration {Fit.BestIteration}) were restored");
        if (Fit?.Status == FitStatus.Cancelled)
            notes.Add($"cancelled after {Fit.Iterations} iterations; these are the best parameters so far (iteration {Fit.BestIteration})");
        double nonFiniteFraction = NonFiniteDraws / (double)Samples;
        if (nonFiniteFraction > MaxNonFiniteFraction)
            notReliable.Add($"the target was not finite at {nonFiniteFraction:P1} of the draws from q");
        else if (NonFiniteDraws > 0)
            caveats.Add($"the target was not finite at {NonFiniteDraws} of {Samples} draws (given weight 0)");
        if (double.IsNaN(ParetoK) || ParetoK > KThreshold)
            notReliable.Add($"k̂ = {Show(ParetoK)} > {KThreshold:F2}: the importance ratios p/q are too heavy-tailed; q misses mass of p, and even reweighting cannot fix it with S = {Samples}");
        else if (ParetoK >= ReliableK)
            caveats.Add($"k̂ = {Show(ParetoK)} is in [{ReliableK}, {KThreshold:F2}]: q is rough; use PSIS-reweighted expectations (ESS {EffectiveSampleSize:F0})");
        if (Fit is { SkippedSteps: > 0 }) notes.Add($"{Fit.SkippedSteps} training steps were skipped (non-finite loss or gradient)");
        if (Fit is { NonFiniteSamples: > 0 }) notes.Add($"{Fit.NonFiniteSamples} training draws had a non-finite target and got weight 0");
        if (Fit?.Status == FitStatus.Completed && Fit.SmoothedElbo.Count >= 2 && Fit.BestIteration == Fit.Iterations)
            notes.Add("the smoothed ELBO was still improving at the last window: more iterations may help");
        var verdict = notReliable.Count > 0 ? FitVerdict.NotReliable : caveats.Count > 0 ? FitVerdict.UsableWithImportanceWeighting : FitVerdict.Reliable;
        if (verdict == FitVerdict.Reliable) notes.Insert(0, $"k̂ = {Show(ParetoK)} < {ReliableK}: q is close to p");
        return (verdict, notReliable.Concat(caveats).Concat(notes).ToArray());
    }

    /// <summary>A multi-line, human-readable report (what the CLI prints after every fit).</summary>
    public string Format()
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine(c, $"Fit report: target '{TargetName}'{(Fit is null ? "" : $", {StatusText(Fit.Status)}")}");
        text.Append(c, $"  ELBO        {Elbo.Mean:F4} ± {Elbo.StandardError:F4}");
        text.AppendLine(Kl is double kl ? string.Create(c, $"   (KL(q‖p) = {kl:F4} nats)") : "");
        text.AppendLine(c, $"  Pareto k̂    {Show(ParetoK)}   (threshold {KThreshold:F2}, S = {Samples})");
        text.AppendLine(c, $"  ESS         {EffectiveSampleSize:F0} of {Samples} ({EffectiveSampleSize / Samples:P1})");
        if (NonFiniteDraws > 0) text.AppendLine(c, $"  non-finite  {NonFiniteDraws} draws (weight 0)");
        if (Fit is not null)
        {
            text.AppendLine(c, $"  iterations  {Fit.Iterations}   time {Fit.Elapsed.TotalSeconds:F1} s   skipped steps {Fit.SkippedSteps}   non-finite training draws {Fit.NonFiniteSamples}");
            if (Fit.RestoredBestParameters)
                text.AppendLine(Fit.BestIteration == 0
                    ? "  parameters  the initial ones (no window of training had a finite ELBO)"
                    : string.Create(c, $"  parameters  best smoothed ELBO {Fit.BestSmoothedElbo:F4}, from iteration {Fit.BestIteration}"));
        }
        text.AppendLine(c, $"  verdict     {VerdictText(Verdict)}");
        foreach (var reason in Reasons) text.AppendLine(c, $"    - {reason}");
        return text.ToString().TrimEnd();
    }

    public override string ToString() => Format();

    private static string Show(double k) => double.IsNegativeInfinity(k) ? "-inf (no tail)" : double.IsPositiveInfinity(k) ? "inf" : k.ToString("F3", CultureInfo.InvariantCulture);

    private static string StatusText(FitStatus status) => status switch
    {
        FitStatus.Completed => "completed",
        FitStatus.StoppedEarly => "stopped early (plateau)",
        FitStatus.Cancelled => "CANCELLED",
        FitStatus.Diverged => "DIVERGED",
        _ => status.ToString(),
    };

    private static string VerdictText(FitVerdict verdict) => verdict switch
    {
        FitVerdict.Reliable => "RELIABLE",
        FitVerdict.UsableWithImportanceWeighting => "USABLE WITH IMPORTANCE WEIGHTING",
        _ => "NOT RELIABLE",
    };
}
