namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>How a fit ended.</summary>
public enum FitStatus
{
    Completed,
    StoppedEarly,
    Cancelled,
    Diverged,
    /// <summary>The wall-time budget (<see cref="TrainerOptions.TimeLimit"/>) ended the fit before its iterations.</summary>
    TimeLimitReached,
}

public sealed partial class FitResult
{
    /// <summary>The smoothed ELBO trace: one point per <see cref="TrainerOptions.ConvergenceWindow"/>.</summary>
    public IReadOnlyList<ElboPoint> SmoothedElbo { get; internal set; } = Array.Empty<ElboPoint>();

    /// <summary>The best smoothed ELBO and the iteration at which its parameters were copied (0 = initial parameters).</summary>
    public double BestSmoothedElbo { get; internal set; } = double.NaN;
    public int BestIteration { get; internal set; }

    /// <summary>True when the returned parameters are the best copy rather than the last step's.</summary>
    public bool RestoredBestParameters { get; internal set; }

    public FitStatus Status { get; internal set; }

    public bool Diverged => Status == FitStatus.Diverged;
    public bool StoppedEarly => Status == FitStatus.StoppedEarly;

    /// <summary>Why training was declared diverged (null otherwise).</summary>
    public string? DivergenceReason { get; internal set; }

    /// <summary>Draws to which the objective gave weight 0 because log p̃ or log q was not finite, over the whole fit.</summary>
    public long NonFiniteSamples { get; internal set; }

    /// <summary>
    /// How many times the training loop read values back from the device (one transfer each): once per report
    /// interval or smoothing window and once at the end, never per step; what a GPU fit waits for.
    /// </summary>
    public int HostReads { get; internal set; }

    /// <summary>The learning rate of the last step.</summary>
    public double FinalLearningRate { get; internal set; }
}
