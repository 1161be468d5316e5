namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>Settings for schedules, clipping, convergence and failure handling (see docs/readme-parts/reliable-vi.md).</summary>
public sealed partial class TrainerOptions
{
    /// <summary>Rescale the gradient to this global L2 norm when it is larger (null: no clipping).</summary>
    public double? GradientClipNorm { get; set; }

    /// <summary>The learning-rate schedule; null means <see cref="LearningRateSchedule.Exponential"/>(<see cref="LearningRateDecay"/>).</summary>
    public LearningRateSchedule? Schedule { get; set; }

    /// <summary>
    /// A wall-time budget: training stops at the first step that starts after it (status
    /// <see cref="FitStatus.TimeLimitReached"/>, best parameters kept as at a normal end), and schedules anneal by
    /// whichever runs out first, the iterations or the time, so a fit stopped by the clock still ends annealed.
    /// Null: no limit.
    /// </summary>
    public TimeSpan? TimeLimit { get; set; }

    /// <summary>Linear warm-up: the learning rate is multiplied by min(1, t / W) for the first W iterations (0: none).</summary>
    public int WarmupIterations { get; set; }

    /// <summary>Iterations per window of the smoothed ELBO trace (keep-best, early stopping, divergence and plateau decisions).</summary>
    public int ConvergenceWindow { get; set; } = 100;

    /// <summary>Stop when the smoothed ELBO has not improved by more than <see cref="EarlyStoppingTolerance"/> for this many windows (null: never stop early).</summary>
    public int? EarlyStoppingPatience { get; set; }

    /// <summary>Improvement (nats) of the smoothed ELBO that counts as progress for early stopping.</summary>
    public double EarlyStoppingTolerance { get; set; } = 1e-3;

    /// <summary>At the end of a fit, put back the parameters of the window with the best smoothed ELBO
    /// (divergence and cancellation always do so).</summary>
    public bool KeepBestParameters { get; set; } = true;

    /// <summary>Divergence: the smoothed ELBO falls this many nats below its best.</summary>
    public double DivergenceElboDrop { get; set; } = 1e3;

    /// <summary>On divergence, after restoring the best parameters, throw <see cref="TrainingDivergedException"/>
    /// (carrying the <see cref="FitResult"/>) — the default, so a diverged fit can never pass unnoticed. Set false to
    /// get the result back with <see cref="FitResult.Status"/> = <see cref="FitStatus.Diverged"/> instead.</summary>
    public bool ThrowOnDivergence { get; set; } = true;

    private void ValidateReliability()
    {
        if (GradientClipNorm is double clip && !(clip > 0 && double.IsFinite(clip)))
            throw new ArgumentOutOfRangeException(nameof(GradientClipNorm), clip, "GradientClipNorm must be positive and finite when set.");
        if (TimeLimit is TimeSpan limit && limit <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(TimeLimit), limit, "TimeLimit must be positive when set.");
        if (WarmupIterations < 0) throw new ArgumentOutOfRangeException(nameof(WarmupIterations), WarmupIterations, "WarmupIterations must be non-negative.");
        if (ConvergenceWindow <= 0) throw new ArgumentOutOfRangeException(nameof(ConvergenceWindow), ConvergenceWindow, "ConvergenceWindow must be positive.");
        if (EarlyStoppingPatience is <= 0) throw new ArgumentOutOfRangeException(nameof(EarlyStoppingPatience), EarlyStoppingPatience, "EarlyStoppingPatience must be positive when set.");
        if (!(EarlyStoppingTolerance >= 0) || double.IsInfinity(EarlyStoppingTolerance))
            throw new ArgumentOutOfRangeException(nameof(EarlyStoppingTolerance), EarlyStoppingTolerance, "EarlyStoppingTolerance must be non-negative and finite.");
        if (!(DivergenceElboDrop > 0)) throw new ArgumentOutOfRangeException(nameof(DivergenceElboDrop), DivergenceElboDrop, "DivergenceElboDrop must be positive.");
    }
}
