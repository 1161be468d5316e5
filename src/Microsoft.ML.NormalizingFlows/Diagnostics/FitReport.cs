using System.Globalization;
using System.Text;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;

namespace Microsoft.ML.NormalizingFlows.Diagnostics;

/// <summary>Whether a fitted q can be trusted.</summary>
public enum FitVerdict
{
    /// <summary>Every test passed: k̂ &lt; 0.5 on every replicate, ESS ≥ 10 % of S, a finite target: q itself is a good approximation.</summary>
    Reliable,

    /// <summary>k̂ in [0.5, threshold] (or ESS 1–10 % of S): use PSIS-reweighted expectations, not raw draws of q.</summary>
    UsableWithImportanceWeighting,

    /// <summary>
    /// threshold &lt; k̂ &lt; 1 on every replicate, nothing else wrong: beyond what importance sampling can correct
    /// with S draws (Vehtari et al. 2024), so neither q's tails nor reweighted estimates are verified; q's bulk
    /// (means, central quantiles) may still be close — check it against another method before relying on it.
    /// </summary>
    Rough,

    /// <summary>k̂ ≥ 1 or not diagnosable, an ESS under 1 % of S, a huge spread of log p̃ − log q, divergence, or a target that is often non-finite: do not use.</summary>
    NotReliable,
}

/// <summary>
/// What a fit produced and whether to trust it: final ELBO ± se (and the exact KL when log Z is known),
/// PSIS k̂ on several independent draws against its sample-size-aware threshold, the effective sample size,
/// the spread of the log ratios, training statistics and a verdict with the tests that decided it.
/// <see cref="Format"/> (and <see cref="ToString"/>) prints it.
/// </summary>
public sealed class FitReport
{
    /// <summary>Above this fraction of non-finite draws the fit is not reliable; any at all rules out "reliable".</summary>
    public const double MaxNonFiniteFraction = 0.01;

    /// <summary>Below this k̂, q itself is trusted (Yao et al. 2018).</summary>
    public const double ReliableK = 0.5;

    /// <summary>At or above this k̂ the importance ratios have no finite mean: nothing about q is verified.</summary>
    public const double HopelessK = 1.0;

    /// <summary>Below this ESS / S the weights rest on a handful of draws: not reliable.</summary>
    public const double MinUsableRelativeEss = 0.01;

    /// <summary>Below this ESS / S, q is not called reliable even with a small k̂ (k̂ alone can be fooled by a flat tail).</summary>
    public const double MinReliableRelativeEss = 0.10;

    /// <summary>
    /// Above this standard deviation of log p̃ − log q across draws (nats) q and p disagree in scale: for q ≈ p
    /// the log ratios vary by well under 1 nat (Var ≈ 2 KL), and with log-normal weights a spread of 4 leaves an
    /// ESS of e^−16 S.
    /// </summary>
    public const double MaxLogRatioSpread = 4.0;

    private FitReport(string targetName, ImportanceSample sample, IReadOnlyList<double> replicateK, FitResult? fit, double? logNormalizer)
    {
        TargetName = targetName;
        Sample = sample;
        Fit = fit;
        Elbo = sample.Elbo();
        Kl = logNormalizer is double logZ && double.IsFinite(Elbo.Mean) ? logZ - Elbo.Mean : null;
        var psis = sample.Psis;
        ParetoK = psis.ParetoK;
        ReplicateParetoK = replicateK;
        KThreshold = psis.KThreshold;
        EffectiveSampleSize = psis.EffectiveSampleSize;
        LogRatioSpread = double.IsNaN(Elbo.StandardError) ? double.NaN : Elbo.StandardError * Math.Sqrt(sample.Count - sample.NonFiniteDraws);
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

    /// <summary>k̂ of <see cref="Sample"/>.</summary>
    public double ParetoK { get; }

    /// <summary>k̂ of the further independent draws (same S, other seeds) that test its stability; empty with one replicate.</summary>
    public IReadOnlyList<double> ReplicateParetoK { get; }

    /// <summary>
    /// The k̂ the verdict uses: the median over all replicates (NaN counted as +∞, not diagnosable). One draw's
    /// k̂ varies by ±0.15 around the truth at S = 10,000; the median of three is robust to one lucky or unlucky tail.
    /// </summary>
    public double VerdictParetoK
    {
        get
        {
            var all = ReplicateParetoK.Prepend(ParetoK).Select(k => double.IsNaN(k) ? double.PositiveInfinity : k).Order().ToArray();
            return all.Length % 2 == 1 ? all[all.Length / 2] : 0.5 * (all[all.Length / 2 - 1] + all[all.Length / 2]);
        }
    }

    public double KThreshold { get; }
    public double EffectiveSampleSize { get; }

    /// <summary>The standard deviation of log p̃ − log q over the finite draws (the ELBO's standard error × √S).</summary>
    public double LogRatioSpread { get; }

    public int Samples => Sample.Count;
    public int NonFiniteDraws => Sample.NonFiniteDraws;
    public FitVerdict Verdict { get; }

    /// <summary>Why the verdict is what it is (and any notes), in plain words; each starts with the test it comes from.</summary>
    public IReadOnlyList<string> Reasons { get; }

    public bool Cancelled => Fit?.Status == FitStatus.Cancelled;

    /// <summary>
    /// Draws S points from q (fixed seed), runs PSIS and judges the fit. <paramref name="replicates"/> − 1 further
    /// independent sets of S draws re-estimate k̂ so that one lucky tail cannot pass a bad fit (the verdict uses
    /// the median k̂). <paramref name="blockSize"/> bounds how many draws go through the target at once (memory).
    /// </summary>
    public static FitReport Create(FlowDistribution q, Target target, FitResult? fit = null, int samples = 10_000, long seed = 20_240_101,
        int replicates = 3, int blockSize = Evaluation.DefaultBlockSize)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(target);
        if (replicates < 1) throw new ArgumentOutOfRangeException(nameof(replicates), replicates, "At least one replicate (the report's own draws) is needed.");
        var sample = ImportanceSample.Draw(q, target, samples, seed, blockSize);
        var replicateK = new double[replicates - 1];
        for (int r = 1; r < replicates; r++)
            replicateK[r - 1] = ImportanceSample.Draw(q, target, samples, seed + 7_919 * r, blockSize).Psis.ParetoK;
        return new FitReport(target.Name, sample, replicateK, fit, target.LogNormalizer);
    }

    /// <summary>Judges given draws (e.g. from a sampler other than this library's); k̂ comes from these draws alone.</summary>
    public static FitReport Create(ImportanceSample sample, string targetName, FitResult? fit = null, double? logNormalizer = null)
    {
        ArgumentNullException.ThrowIfNull(sample);
        return new FitReport(targetName ?? "target", sample, Array.Empty<double>(), fit, logNormalizer);
    }

    private (FitVerdict, string[]) Judge()
    {
        var notReliable = new List<string>();
        var rough = new List<string>();
        var caveats = new List<string>();
        var notes = new List<string>();
        if (Fit?.Status == FitStatus.Diverged)
            notReliable.Add($"[training] diverged: {Fit.DivergenceReason}; the best parameters (iteration {Fit.BestIteration}) were restored");
        if (Fit?.Status == FitStatus.Cancelled)
            notes.Add($"[training] cancelled after {Fit.Iterations} iterations; these are the best parameters so far (iteration {Fit.BestIteration})");
        double nonFiniteFraction = NonFiniteDraws / (double)Samples;
        if (nonFiniteFraction > MaxNonFiniteFraction)
            notReliable.Add($"[non-finite] the target was not finite at {nonFiniteFraction:P1} of the draws from q");
        else if (NonFiniteDraws > 0)
            caveats.Add($"[non-finite] the target was not finite at {NonFiniteDraws} of {Samples} draws (given weight 0)");

        double k = VerdictParetoK;
        string kText = ReplicateParetoK.Count == 0 ? $"k̂ = {Show(k)}" : $"the median k̂ over {ReplicateParetoK.Count + 1} independent draws is {Show(k)}";
        if (k >= HopelessK)
            notReliable.Add(double.IsPositiveInfinity(k)
                ? $"[k̂] {kText}: the tail of the importance ratios could not be fitted (a few draws carry all the weight); q misses mass of p"
                : $"[k̂] {kText} ≥ {HopelessK}: the importance ratios p/q have no finite mean; q misses mass of p and no reweighting can fix it");
        else if (k > KThreshold)
            rough.Add($"[k̂] {kText} > {KThreshold:F2}: beyond what importance sampling can correct with S = {Samples} (it would need S ≥ {MinimumDraws(k):E1}); " +
                      "q's tails and sd are not verified, its bulk may still be close: compare with another method before relying on it");
        else if (k >= ReliableK)
            caveats.Add($"[k̂] {kText} is in [{ReliableK}, {KThreshold:F2}]: q is rough; use PSIS-reweighted expectations (ESS {EffectiveSampleSize:F0})");
        if (ReplicateParetoK.Count > 0 && Classify(ParetoK) != Classify(k))
            notes.Add($"[k̂ stability] k̂ varied across independent draws ({string.Join(", ", ReplicateParetoK.Prepend(ParetoK).Select(Show))}); the verdict uses the median");

        double relativeEss = EffectiveSampleSize / Samples;
        if (!(relativeEss >= MinUsableRelativeEss))
            notReliable.Add($"[ESS] the effective sample size is {EffectiveSampleSize:F0} of {Samples} ({relativeEss:P1} < {MinUsableRelativeEss:P0}): the weights rest on a handful of draws");
        else if (relativeEss < MinReliableRelativeEss)
            caveats.Add($"[ESS] the effective sample size is {EffectiveSampleSize:F0} of {Samples} ({relativeEss:P1} < {MinReliableRelativeEss:P0}): use PSIS-reweighted expectations");
        if (LogRatioSpread > MaxLogRatioSpread)
            notReliable.Add($"[ELBO spread] log p̃ − log q varies with sd {LogRatioSpread:G4} nats across draws (ELBO standard error {Elbo.StandardError:G4}); " +
                            $"above {MaxLogRatioSpread} q and p disagree in scale (for q ≈ p it is well under 1)");

        if (Fit is { SkippedSteps: > 0 }) notes.Add($"[training] {Fit.SkippedSteps} training steps were skipped (non-finite loss or gradient)");
        if (Fit is { NonFiniteSamples: > 0 }) notes.Add($"[training] {Fit.NonFiniteSamples} training draws had a non-finite target and got weight 0");
        if (Fit?.Status is FitStatus.Completed or FitStatus.TimeLimitReached && Fit.SmoothedElbo.Count >= 2 && Fit.BestIteration == Fit.Iterations)
            notes.Add("[training] the smoothed ELBO was still improving at the last window: more iterations may help");
        var verdict = notReliable.Count > 0 ? FitVerdict.NotReliable
            : rough.Count > 0 ? FitVerdict.Rough
            : caveats.Count > 0 ? FitVerdict.UsableWithImportanceWeighting : FitVerdict.Reliable;
        if (verdict == FitVerdict.Reliable)
            notes.Insert(0, $"{kText} < {ReliableK}, ESS {relativeEss:P0} of S, log-ratio sd {LogRatioSpread:F3} nats: q is close to p");
        return (verdict, notReliable.Concat(rough).Concat(caveats).Concat(notes).ToArray());
    }

    private int Classify(double k) => double.IsNaN(k) || k >= HopelessK ? 3 : k > KThreshold ? 2 : k >= ReliableK ? 1 : 0;

    /// <summary>10^(1/(1 − k)): the draws PSIS needs for k̂ to pass (Vehtari et al. 2024).</summary>
    private static double MinimumDraws(double k) => Math.Pow(10, 1 / (1 - k));

    /// <summary>The report without its draws (what a saved model keeps).</summary>
    public FitReportSummary Summary() => new(TargetName, Verdict, Reasons.ToArray(), ParetoK, ReplicateParetoK.ToArray(), VerdictParetoK, KThreshold,
        EffectiveSampleSize, Samples, NonFiniteDraws, Elbo.Mean, Elbo.StandardError, Kl, LogRatioSpread, Format());

    /// <summary>A multi-line, human-readable report (what the CLI prints after every fit).</summary>
    public string Format()
    {
        var c = CultureInfo.InvariantCulture;
        var text = new StringBuilder();
        text.AppendLine(c, $"Fit report: target '{TargetName}'{(Fit is null ? "" : $", {StatusText(Fit.Status)}")}");
        text.Append(c, $"  ELBO        {Elbo.Mean:F4} ± {Elbo.StandardError:F4}");
        text.AppendLine(Kl is double kl ? string.Create(c, $"   (KL(q‖p) = {kl:F4} nats)") : "");
        text.AppendLine(c, $"  Pareto k̂    {Show(ParetoK)}   (threshold {KThreshold:F2}, S = {Samples}{(ReplicateParetoK.Count == 0 ? "" : $"; replicates {string.Join(", ", ReplicateParetoK.Select(Show))}")})");
        text.AppendLine(c, $"  ESS         {EffectiveSampleSize:F0} of {Samples} ({EffectiveSampleSize / Samples:P1})");
        text.AppendLine(c, $"  log ratio   sd {LogRatioSpread:G4} nats");
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
        FitStatus.TimeLimitReached => "stopped at its time limit",
        FitStatus.StoppedEarly => "stopped early (plateau)",
        FitStatus.Cancelled => "CANCELLED",
        FitStatus.Diverged => "DIVERGED",
        _ => status.ToString(),
    };

    private static string VerdictText(FitVerdict verdict) => verdict switch
    {
        FitVerdict.Reliable => "RELIABLE",
        FitVerdict.UsableWithImportanceWeighting => "USABLE WITH IMPORTANCE WEIGHTING",
        FitVerdict.Rough => "ROUGH — bulk only, not verified",
        _ => "NOT RELIABLE",
    };
}
