using System.Diagnostics;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using TorchSharp;
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
    /// A step whose loss or gradient is not finite is skipped (and counted); after
    /// <see cref="TrainerOptions.MaxConsecutiveNonFiniteSteps"/> in a row a <see cref="TrainingDivergedException"/>
    /// says which term went bad. Cancellation stops after the current step and returns what was done.
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
        if (options.Threads is int threads) torch.set_num_threads(threads);

        var device = DeviceSelector.Resolve(options.Device);
        q.to(options.DType).to(device);
        q.train();
        var parameters = q.parameters().ToList();
        if (parameters.Count == 0) throw new ArgumentException("The flow has no trainable parameters.", nameof(q));

        var objective = options.Objective ?? new ElboObjective();
        var generator = new Generator((ulong)options.Seed, device);
        using var optimizer = CreateOptimizer(parameters, options);
        var scheduler = options.LearningRateDecay < 1 ? optim.lr_scheduler.ExponentialLR(optimizer, options.LearningRateDecay) : null;

        var trace = new double[options.Iterations];
        var clock = Stopwatch.StartNew();
        int skipped = 0, consecutiveBad = 0, completed = 0;
        double windowSum = 0;
        int windowCount = 0;
        double learningRate = options.LearningRate;
        for (int it = 1; it <= options.Iterations; it++)
        {
            if (cancellationToken.IsCancellationRequested) break;
            var (elbo, badTerm) = Step(q, target, objective, optimizer, parameters, options.BatchSize, generator);
            trace[it - 1] = elbo;
            completed = it;
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
                    throw new TrainingDivergedException(
                        $"Training stopped at iteration {it}: {consecutiveBad} consecutive steps produced non-finite values in {badTerm} " +
                        $"(target '{target.Name}'). Check the target for NaN/Inf, lower the learning rate (now {learningRate:g3}), or use Float64 precision.",
                        it, badTerm);
            }
            if (scheduler is not null) { scheduler.step(); learningRate *= options.LearningRateDecay; }
            if (progress is not null && (it % options.ReportEvery == 0 || it == options.Iterations))
            {
                progress.Report(new TrainingProgress(it, options.Iterations, windowCount > 0 ? windowSum / windowCount : double.NaN,
                    learningRate, clock.Elapsed, skipped));
                windowSum = 0;
                windowCount = 0;
            }
        }
        clock.Stop();
        q.eval();
        return new FitResult(trace[..completed], skipped, clock.Elapsed, completed, completed < options.Iterations);
    }

    internal static optim.Optimizer CreateOptimizer(IEnumerable<Parameter> parameters, TrainerOptions options) => options.Optimizer switch
    {
        OptimizerKind.Adam => optim.Adam(parameters, options.LearningRate),
        OptimizerKind.RMSprop => optim.RMSProp(parameters, options.LearningRate),
        _ => throw new ArgumentOutOfRangeException(nameof(options), options.Optimizer, "Unknown optimizer."),
    };

    /// <summary>One optimizer step inside its own dispose scope (no tensor outlives the step). Returns the
    /// minibatch ELBO and, when the step had to be skipped, the name of the term that went non-finite.</summary>
    private static (double Elbo, string? BadTerm) Step(FlowDistribution q, Target target, VariationalObjective objective,
        optim.Optimizer optimizer, List<Parameter> parameters, int batchSize, Generator generator)
    {
        using var scope = torch.NewDisposeScope();
        optimizer.zero_grad();
        var terms = objective.Compute(q, target, batchSize, generator);
        if (!double.IsFinite(terms.Elbo))
        {
            string term = !terms.LogP.isfinite().all().item<bool>() ? "log p̃ (target)"
                : !terms.LogQ.isfinite().all().item<bool>() ? "log q (flow)" : "the objective";
            return (double.NaN, term);
        }
        terms.Loss.backward();
        // One reduction over all gradients: finite iff every entry is finite.
        var gradientCheck = torch.stack(parameters.Where(p => p.grad is not null).Select(p => p.grad!.abs().sum()).ToArray()).sum();
        if (!gradientCheck.isfinite().item<bool>())
        {
            optimizer.zero_grad();
            return (double.NaN, "gradient");
        }
        optimizer.step();
        return (terms.Elbo, null);
    }
}
