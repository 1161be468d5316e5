using System.Diagnostics;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using TorchSharp;
using Microsoft.ML.NormalizingFlows.Training.Optimizers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// Fits q to a target by stochastic optimization of a variational objective (the ELBO by default).
/// This is where Fit reaches the optimizer: <see cref="Fit"/> → <see cref="CreateOptimizer"/> → one
/// <see cref="Step"/> per iteration.
/// </summary>
public static class VariationalTrainer
{
    /// <summary>
    /// Moves q to the options' precision and device and trains it in place against the target.
    /// A step whose loss or gradient is not finite is skipped (and counted). Training is declared diverged
    /// after <see cref="TrainerOptions.MaxConsecutiveNonFiniteSteps"/> such steps in a row, or when the
    /// smoothed ELBO falls <see cref="TrainerOptions.DivergenceElboDrop"/> below its best: the best parameters
    /// are restored and a <see cref="TrainingDivergedException"/> says which term went bad (or, with
    /// <see cref="TrainerOptions.ThrowOnDivergence"/> off, the result says so in <see cref="FitResult.Status"/>). Cancellation stops after the current step and returns the best parameters so far. A target
    /// that throws (<see cref="TargetException"/>) propagates, with the best parameters restored first.
    /// </summary>
    public static FitResult Fit(FlowDistribution q, Target target, TrainerOptions options,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (q.Dimension != target.Dimension)
            throw new ArgumentException($"The flow has dimension {q.Dimension} but target '{target.Name}' has dimension {target.Dimension}.", nameof(target));
        options.RequireBatchFits(q.Dimension * ((options.Objective as ImportanceWeightedElboObjective)?.InnerSamples ?? 1));
        using var threads = TorchThreadScope.Enter(options.Threads);

        var device = DeviceSelector.Resolve(options.Device);
        q.to(options.DType).to(device);
        q.train();
        var parameters = q.parameters().ToList();
        if (parameters.Count == 0) throw new ArgumentException("The flow has no trainable parameters.", nameof(q));

        var objective = options.Objective ?? new ElboObjective();
        var generator = new Generator((ulong)options.Seed, device);
        using var optimizer = CreateOptimizer(parameters, options);
        var schedule = options.Schedule ?? LearningRateSchedule.Exponential(options.LearningRateDecay);
        schedule.Reset();
        using var monitor = new ConvergenceMonitor(parameters, options);

        var trace = new double[options.Iterations];
        var clock = Stopwatch.StartNew();
        int skipped = 0, consecutiveBad = 0, completed = 0;
        long nonFiniteSamples = 0;
        double windowSum = 0;
        int windowCount = 0;
        double learningRate = options.LearningRate;
        var status = FitStatus.Completed;
        string? divergence = null, divergedTerm = null;
        try
        {
            for (int it = 1; it <= options.Iterations; it++)
            {
                if (cancellationToken.IsCancellationRequested) { status = FitStatus.Cancelled; break; }
                if (options.TimeLimit is TimeSpan limit && clock.Elapsed >= limit) { status = FitStatus.TimeLimitReached; break; }
                learningRate = LearningRateAt(it, options, schedule, clock.Elapsed);
                optimizer.LearningRate = learningRate;
                var (elbo, badTerm, dropped) = Step(q, target, objective, optimizer, parameters, options.BatchSize, generator, options.GradientClipNorm,
                    requireTargetGradient: it == 1);
                trace[it - 1] = elbo;
                completed = it;
                nonFiniteSamples += dropped;
                if (badTerm is null)
                {
                    consecutiveBad = 0;
                    windowSum += elbo;
                    windowCount++;
                }
                else
                {
                    skipped++;
                    if (++consecutiveBad >= options.MaxConsecutiveNonFiniteSteps)
                    {
                        divergedTerm = badTerm;
                        divergence = $"{consecutiveBad} consecutive steps produced non-finite values in {badTerm} (target '{target.Name}'); " +
                                     $"check the target for NaN/Inf, lower the learning rate (now {learningRate:g3}), clip gradients, or use Float64 precision";
                    }
                }
                if (monitor.Record(it, elbo) is double smoothed)
                {
                    schedule.ObserveSmoothedElbo(smoothed);
                    if (divergence is null && monitor.DivergenceReason is string drop) { divergence = drop; divergedTerm = "the objective"; }
                }
                if (progress is not null && (it % options.ReportEvery == 0 || it == options.Iterations))
                {
                    progress.Report(new TrainingProgress(it, options.Iterations, windowCount > 0 ? windowSum / windowCount : double.NaN,
                        learningRate, clock.Elapsed, skipped));
                    windowSum = 0;
                    windowCount = 0;
                }
                if (divergence is not null) { status = FitStatus.Diverged; break; }
                if (monitor.PlateauReached) { status = FitStatus.StoppedEarly; break; }
            }
        }
        catch
        {
            monitor.RestoreBest(); // a throwing target leaves the model at its best parameters, not mid-step
            q.eval();
            throw;
        }
        clock.Stop();
        if (status != FitStatus.Diverged) monitor.Flush(completed);
        // Divergence and cancellation always return the best parameters; so does a normal end with KeepBestParameters;
        // and never parameters that are not finite.
        bool restore = status is FitStatus.Diverged or FitStatus.Cancelled || options.KeepBestParameters || !AllFinite(parameters);
        if (restore) monitor.RestoreBest();
        q.eval();
        var result = new FitResult(trace[..completed], skipped, clock.Elapsed, completed, status == FitStatus.Cancelled)
        {
            Status = status,
            SmoothedElbo = monitor.Smoothed.ToArray(),
            BestSmoothedElbo = monitor.BestElbo,
            BestIteration = monitor.BestIteration,
            RestoredBestParameters = restore,
            DivergenceReason = divergence,
            NonFiniteSamples = nonFiniteSamples,
            FinalLearningRate = learningRate,
        };
        if (status == FitStatus.Diverged && options.ThrowOnDivergence)
            throw new TrainingDivergedException(
                $"Training stopped at iteration {completed}: {divergence}. The best parameters (iteration {monitor.BestIteration}) were restored.",
                completed, divergedTerm ?? "the objective", result);
        return result;
    }

    /// <summary>
    /// A log p̃ computed outside autograd (values read back with <c>.data&lt;T&gt;()</c> or <c>.item()</c> and
    /// rebuilt as a new tensor) carries no gradient: every step would then only fit log q to nothing and
    /// return the base distribution, reporting success. Checked on the first step, where it costs nothing.
    /// </summary>
    private static void RequireGradientThroughTarget(Target target, Tensor logP)
    {
        if (!logP.requires_grad)
            throw new TargetException(
                $"Target '{target.Name}' returned a log density that does not depend on the flow's parameters (no gradient flows through it). " +
                "Write log p̃ with TorchSharp operations on the given tensor z; reading values out (.data<T>(), .item(), ToArray) and building a new tensor cuts the gradient.");
    }

    /// <summary>
    /// Base rate × schedule factor × linear warm-up. With a time limit the schedule sees the iteration that
    /// corresponds to the larger of the two progress fractions, iterations done and time used.
    /// </summary>
    internal static double LearningRateAt(int iteration, TrainerOptions options, LearningRateSchedule schedule, TimeSpan elapsed = default)
    {
        double warmup = options.WarmupIterations > 0 ? Math.Min(1.0, iteration / (double)options.WarmupIterations) : 1.0;
        int scheduled = iteration;
        if (options.TimeLimit is TimeSpan limit && options.Iterations > 1)
        {
            double byTime = Math.Min(1.0, elapsed / limit);
            scheduled = Math.Max(iteration, 1 + (int)Math.Round(byTime * (options.Iterations - 1)));
        }
        return options.LearningRate * schedule.Factor(scheduled, options.Iterations) * warmup;
    }

    private static bool AllFinite(List<Parameter> parameters)
    {
        using var noGrad = torch.no_grad();
        return parameters.All(p => p.isfinite().all().item<bool>());
    }

    /// <summary>
    /// True when every gradient entry is finite, in one native call: the global max-norm max |g| (libtorch's
    /// clip_grad_norm_ with an infinite bound, which measures and never rescales) is finite iff every entry is, and
    /// unlike a 2-norm it cannot overflow on large finite gradients. The per-parameter abs().sum() + stack it replaces
    /// cost 2P + 3 tensor operations per step (P parameters: ~100 for realnvp K = 8). Finite gradients are left as they
    /// are; non-finite ones may be overwritten with NaN, which is harmless because such a step is skipped and zeroed.
    /// </summary>
    internal static bool GradientsAreFinite(IEnumerable<Parameter> parameters) =>
        double.IsFinite(nn.utils.clip_grad_norm_(parameters.Where(p => p.grad is not null), double.PositiveInfinity, double.PositiveInfinity));

    internal static FlowOptimizer CreateOptimizer(IEnumerable<Parameter> parameters, TrainerOptions options) =>
        FlowOptimizer.Create(parameters, options.Optimizer, options.LearningRate);

    /// <summary>One optimizer step inside its own dispose scope (no tensor outlives the step). Returns the
    /// minibatch ELBO and, when the step had to be skipped, the name of the term that went non-finite.</summary>
    private static (double Elbo, string? BadTerm, int DroppedSamples) Step(FlowDistribution q, Target target, VariationalObjective objective,
        FlowOptimizer optimizer, List<Parameter> parameters, int batchSize, Generator generator, double? clipNorm, bool requireTargetGradient)
    {
        using var scope = torch.NewDisposeScope();
        optimizer.ZeroGrad();
        var terms = objective.Compute(q, target, batchSize, generator);
        if (requireTargetGradient) RequireGradientThroughTarget(target, terms.LogP);
        if (!double.IsFinite(terms.Elbo))
        {
            string term = !terms.LogP.isfinite().all().item<bool>() ? "log p̃ (target)"
                : !terms.LogQ.isfinite().all().item<bool>() ? "log q (flow)" : "the objective";
            return (double.NaN, term, terms.NonFiniteSamples);
        }
        terms.Loss.backward();
        // One reduction over all gradients: finite iff every entry is finite.
        // Clipping returns the global norm, which is finite iff every entry is; without clipping, one reduction does the same.
        bool finiteGradient = clipNorm is double maxNorm
            ? double.IsFinite(nn.utils.clip_grad_norm_(parameters.Where(p => p.grad is not null), maxNorm))
            : GradientsAreFinite(parameters);
        if (!finiteGradient)
        {
            optimizer.ZeroGrad();
            return (double.NaN, "gradient", terms.NonFiniteSamples);
        }
        optimizer.Step();
        return (terms.Elbo, null, terms.NonFiniteSamples);
    }
}
