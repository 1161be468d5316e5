namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// A learning-rate schedule: the factor applied to <see cref="TrainerOptions.LearningRate"/> at each
/// iteration (before warm-up, which multiplies by min(1, t / W)). Create one per fit: a plateau schedule
/// keeps state.
/// </summary>
public abstract class LearningRateSchedule
{
    /// <summary>The factor for iteration <paramref name="iteration"/> (1-based) of <paramref name="iterations"/>.</summary>
    public abstract double Factor(int iteration, int iterations);

    /// <summary>Called with the smoothed ELBO at the end of every convergence window (for plateau schedules).</summary>
    public virtual void ObserveSmoothedElbo(double elbo) { }

    /// <summary>Clears any state (the trainer calls it when a fit starts).</summary>
    public virtual void Reset() { }

    /// <summary>Factor 1 throughout.</summary>
    public static LearningRateSchedule Constant() => new ExponentialSchedule(1);

    /// <summary>γ^(t−1): multiply by γ ∈ (0, 1] after every step.</summary>
    public static LearningRateSchedule Exponential(double gamma) => new ExponentialSchedule(gamma);

    /// <summary>Cosine annealing from 1 down to <paramref name="minimumFactor"/> at the last iteration.</summary>
    public static LearningRateSchedule Cosine(double minimumFactor = 0.0) => new CosineSchedule(minimumFactor);

    /// <summary>
    /// Multiply by <paramref name="factor"/> when the smoothed ELBO has not improved by more than
    /// <paramref name="threshold"/> nats for <paramref name="patience"/> windows; never below <paramref name="minimumFactor"/>.
    /// </summary>
    public static LearningRateSchedule Plateau(double factor = 0.5, int patience = 5, double threshold = 1e-3, double minimumFactor = 1e-3) =>
        new PlateauSchedule(factor, patience, threshold, minimumFactor);
}

internal sealed class ExponentialSchedule : LearningRateSchedule
{
    private readonly double gamma;

    public ExponentialSchedule(double gamma)
    {
        if (!(gamma > 0 && gamma <= 1)) throw new ArgumentOutOfRangeException(nameof(gamma), gamma, "The decay γ must lie in (0, 1].");
        this.gamma = gamma;
    }

    public override double Factor(int iteration, int iterations) => gamma == 1 ? 1 : Math.Pow(gamma, iteration - 1);
}

internal sealed class CosineSchedule : LearningRateSchedule
{
    private readonly double minimum;

    public CosineSchedule(double minimumFactor)
    {
        if (!(minimumFactor >= 0 && minimumFactor <= 1)) throw new ArgumentOutOfRangeException(nameof(minimumFactor), minimumFactor, "The minimum factor must lie in [0, 1].");
        minimum = minimumFactor;
    }

    public override double Factor(int iteration, int iterations)
    {
        double progress = iterations <= 1 ? 1 : (iteration - 1) / (double)(iterations - 1);
        return minimum + (1 - minimum) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}

internal sealed class PlateauSchedule : LearningRateSchedule
{
    private readonly double factor, threshold, minimum;
    private readonly int patience;
    private double current = 1, best = double.NegativeInfinity;
    private int stale;

    public PlateauSchedule(double factor, int patience, double threshold, double minimumFactor)
    {
        if (!(factor > 0 && factor < 1)) throw new ArgumentOutOfRangeException(nameof(factor), factor, "The reduction factor must lie in (0, 1).");
        if (patience <= 0) throw new ArgumentOutOfRangeException(nameof(patience), patience, "Patience must be positive.");
        if (!(threshold >= 0)) throw new ArgumentOutOfRangeException(nameof(threshold), threshold, "The threshold must be non-negative.");
        if (!(minimumFactor > 0 && minimumFactor <= 1)) throw new ArgumentOutOfRangeException(nameof(minimumFactor), minimumFactor, "The minimum factor must lie in (0, 1].");
        this.factor = factor;
        this.patience = patience;
        this.threshold = threshold;
        minimum = minimumFactor;
    }

    public override double Factor(int iteration, int iterations) => current;

    public override void ObserveSmoothedElbo(double elbo)
    {
        if (!double.IsFinite(elbo)) return;
        if (elbo > best + threshold) { best = elbo; stale = 0; return; }
        if (++stale >= patience) { current = Math.Max(minimum, current * factor); stale = 0; }
    }

    public override void Reset() { current = 1; best = double.NegativeInfinity; stale = 0; }
}
