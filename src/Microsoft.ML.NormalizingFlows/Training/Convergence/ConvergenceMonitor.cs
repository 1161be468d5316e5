using TorchSharp.Modules;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>A point of the smoothed ELBO trace: the mean minibatch ELBO of the finite steps of the window ending at <see cref="Iteration"/>.</summary>
public readonly record struct ElboPoint(int Iteration, double Elbo);

/// <summary>
/// Watches the minibatch ELBO in windows of <see cref="TrainerOptions.ConvergenceWindow"/> iterations:
/// keeps the smoothed trace, a copy of the parameters at the best window, and decides early stopping
/// (no improvement above the tolerance for the patience) and divergence (the smoothed ELBO fell more than
/// <see cref="TrainerOptions.DivergenceElboDrop"/> below the best).
/// </summary>
internal sealed class ConvergenceMonitor : IDisposable
{
    private readonly TrainerOptions options;
    private readonly ParameterSnapshot best;
    private readonly List<ElboPoint> smoothed = new();
    private double windowSum;
    private int windowCount, staleWindows;

    public ConvergenceMonitor(List<Parameter> parameters, TrainerOptions options)
    {
        this.options = options;
        best = new ParameterSnapshot(parameters); // the initial parameters, until a window beats them
    }

    public IReadOnlyList<ElboPoint> Smoothed => smoothed;
    public double BestElbo { get; private set; } = double.NegativeInfinity;

    /// <summary>The iteration whose parameters the best copy holds (0 = the initial parameters).</summary>
    public int BestIteration { get; private set; }

    public bool PlateauReached { get; private set; }
    public string? DivergenceReason { get; private set; }

    /// <summary>Records one step's minibatch ELBO (finite steps only count) and, at a window's end, updates the state.
    /// Returns the window's smoothed ELBO when a window closed, else null.</summary>
    public double? Record(int iteration, double elbo)
    {
        if (double.IsFinite(elbo)) { windowSum += elbo; windowCount++; }
        if (iteration % options.ConvergenceWindow != 0 || windowCount == 0) return null;
        double mean = windowSum / windowCount;
        windowSum = 0;
        windowCount = 0;
        smoothed.Add(new ElboPoint(iteration, mean));
        bool improved = mean > BestElbo + options.EarlyStoppingTolerance;
        if (mean > BestElbo) { BestElbo = mean; BestIteration = iteration; best.Capture(); }
        if (improved) staleWindows = 0;
        else if (options.EarlyStoppingPatience is int patience && ++staleWindows >= patience) PlateauReached = true;
        if (mean < BestElbo - options.DivergenceElboDrop)
            DivergenceReason = $"the smoothed ELBO fell to {mean:G4}, more than {options.DivergenceElboDrop:G3} nats below its best {BestElbo:G4} (iteration {BestIteration})";
        return mean;
    }

    /// <summary>
    /// Closes a last, partial window (iterations since the last full one) so that a fit shorter than one
    /// window, or one that stops between windows, can still keep its final parameters.
    /// </summary>
    public void Flush(int iteration)
    {
        if (windowCount == 0 || iteration % options.ConvergenceWindow == 0) return;
        double mean = windowSum / windowCount;
        windowSum = 0;
        windowCount = 0;
        smoothed.Add(new ElboPoint(iteration, mean));
        if (mean > BestElbo) { BestElbo = mean; BestIteration = iteration; best.Capture(); }
    }

    /// <summary>Writes the best parameters seen (or the initial ones) back.</summary>
    public void RestoreBest() => best.Restore();

    public void Dispose() => best.Dispose();
}
