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
        int skipped = 0, consecutiveBad = 0, completed = 0, processed = 0;
        long nonFiniteSamples = 0;
        double windowSum = 0;
        int windowCount = 0;
        double learningRate = options.LearningRate;
        var status = FitStatus.Completed;
        string? divergence = null, divergedTerm = null;
        using var log = new DeferredStepLog();

        // Host-side bookkeeping of the steps read back from the device, in order; true when training must stop.
        bool Process(double[][] rows)
        {
            int rejected = 0;
            foreach (var row in rows)
            {
                int it = ++processed;
                var (elbo, badTerm) = StepOutcome(row);
                trace[it - 1] = elbo;
                if (row.Length > 4) nonFiniteSamples += (long)row[4];
                if (badTerm is null)
                {
                    consecutiveBad = 0;
                    windowSum += elbo;
                    windowCount++;
                }
                else
                {
                    skipped++;
                    rejected++;
                    if (++consecutiveBad >= options.MaxConsecutiveNonFiniteSteps && divergence is null)
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
                if (divergence is not null) { status = FitStatus.Diverged; completed = it; break; }
                if (monitor.PlateauReached) { status = FitStatus.StoppedEarly; completed = it; break; }
            }
            optimizer.Uncount(rejected);
            return status is FitStatus.Diverged or FitStatus.StoppedEarly;
        }

        try
        {
            for (int it = 1; it <= options.Iterations; it++)
            {
                if (cancellationToken.IsCancellationRequested) { status = FitStatus.Cancelled; break; }
                if (options.TimeLimit is TimeSpan limit && clock.Elapsed >= limit) { status = FitStatus.TimeLimitReached; break; }
                learningRate = LearningRateAt(it, options, schedule, clock.Elapsed);
                optimizer.LearningRate = learningRate;
                Step(q, target, objective, optimizer, options.BatchSize, generator, options.GradientClipNorm, log, requireTargetGradient: it == 1);
                completed = it;
                // The device is read only where the host must decide something: a smoothing window closes (best
                // parameters, early stopping, divergence), a progress report is due, or training ends.
                if ((it % options.ConvergenceWindow == 0 || it % options.ReportEvery == 0 || it == options.Iterations) && Process(log.Read()))
                    break;
            }
            if (log.Pending > 0) Process(log.Read()); // steps since the last read, when cancellation or the time limit stopped the loop
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
            HostReads = log.Reads,
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

    internal static FlowOptimizer CreateOptimizer(IEnumerable<Parameter> parameters, TrainerOptions options) =>
        FlowOptimizer.Create(parameters, options.Optimizer, options.LearningRate);

    /// <summary>
    /// The ELBO of a step read back from the device and, when the step was rejected, the term that went non-finite.
    /// A row is (ELBO, Σ log p̃, Σ log q, max |gradient| [, dropped draws]); the device accepted the step iff the ELBO
    /// and the largest gradient entry were finite (<see cref="Step"/>).
    /// </summary>
    internal static (double Elbo, string? BadTerm) StepOutcome(double[] row)
    {
        if (FlowOptimizer.WasAccepted(row[0], row[3])) return (row[0], null);
        string term = !double.IsFinite(row[1]) ? "log p̃ (target)"
            : !double.IsFinite(row[2]) ? "log q (flow)"
            : !double.IsFinite(row[0]) ? "the objective" : "gradient";
        return (double.NaN, term);
    }

    /// <summary>
    /// One optimizer step inside its own dispose scope (no tensor outlives the step), with nothing read back to the
    /// host: whether the step is finite is decided on the device and masks the update (a rejected step changes
    /// neither parameters nor optimizer state), and the step's values go to <paramref name="log"/> for the trainer to
    /// read at its next report interval (<see cref="FlowOptimizer.StepIfFinite"/>).
    /// </summary>
    private static void Step(FlowDistribution q, Target target, VariationalObjective objective, FlowOptimizer optimizer,
        int batchSize, Generator generator, double? clipNorm, DeferredStepLog log, bool requireTargetGradient)
    {
        using var scope = torch.NewDisposeScope();
        optimizer.ZeroGrad();
        var terms = objective.Compute(q, target, batchSize, generator);
        if (requireTargetGradient) RequireGradientThroughTarget(target, terms.LogP);
        terms.Loss.backward();
        using var noGrad = torch.no_grad(); // what follows only reads values: no graph, no detach() per term
        var dtype = optimizer.Gradients.dtype;
        var elbo = InType(terms.Elbo, dtype);
        var largest = optimizer.StepIfFinite(elbo, clipNorm);
        var values = new List<Tensor> { elbo, InType(terms.LogP.sum(), dtype), InType(terms.LogQ.sum(), dtype), largest };
        if (terms.NonFiniteSamples is Tensor dropped) values.Add(InType(dropped, dtype));
        log.Add(torch.stack(values));
    }

    /// <summary>The tensor in <paramref name="dtype"/>; itself (no new operation) when it already is.</summary>
    private static Tensor InType(Tensor tensor, ScalarType dtype) => tensor.dtype == dtype ? tensor : tensor.to(dtype);
}
