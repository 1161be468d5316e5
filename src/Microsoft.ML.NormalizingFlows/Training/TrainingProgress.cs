namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>A progress report: the ELBO is the mean over the iterations since the previous report.</summary>
public readonly record struct TrainingProgress(int Iteration, int Iterations, double Elbo, double LearningRate, TimeSpan Elapsed, int SkippedSteps);

/// <summary>What a fit did.</summary>
public sealed partial class FitResult
{
    internal FitResult(double[] elboTrace, int skippedSteps, TimeSpan elapsed, int iterations, bool cancelled)
    {
        ElboTrace = elboTrace;
        SkippedSteps = skippedSteps;
        Elapsed = elapsed;
        Iterations = iterations;
        Cancelled = cancelled;
    }

    /// <summary>The minibatch ELBO at every completed iteration (NaN where a step was skipped).</summary>
    public IReadOnlyList<double> ElboTrace { get; }

    /// <summary>Steps skipped because the loss or a gradient was not finite.</summary>
    public int SkippedSteps { get; }

    public TimeSpan Elapsed { get; }

    /// <summary>Iterations completed (fewer than asked when cancelled).</summary>
    public int Iterations { get; }

    public bool Cancelled { get; }
}

/// <summary>Training produced non-finite values too many times in a row; says which term went bad and when.</summary>
public sealed class TrainingDivergedException : Exception
{
    public TrainingDivergedException(string message, int iteration, string term, FitResult? result = null) : base(message)
    {
        Iteration = iteration;
        Term = term;
        Result = result;
    }

    /// <summary>What the fit did up to the divergence (its parameters are the best ones, restored).</summary>
    public FitResult? Result { get; }

    /// <summary>The iteration of the last bad step (1-based).</summary>
    public int Iteration { get; }

    /// <summary>"log p̃ (target)", "log q (flow)" or "gradient".</summary>
    public string Term { get; }
}
