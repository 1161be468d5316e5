using System.Diagnostics;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Training.Optimizers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// Density estimation: fits q to data by maximum likelihood (forward KL), minimizing −mean log q(x) over
/// minibatches that a caller streams in. Needs a flow whose <see cref="FlowDistribution.LogProb"/> is
/// differentiable in its parameters (an analytic inverse: radial, the Gaussian families, coupling and
/// autoregressive flows); planar flows invert numerically without gradients and are refused.
/// Progress reports carry the mean log-likelihood per point in <see cref="TrainingProgress.Elbo"/>.
/// </summary>
public static class MaximumLikelihoodTrainer
{
    /// <param name="q">The flow, trained in place.</param>
    /// <param name="nextBatch">Returns the next minibatch of data, shape [B, d] (any float dtype, any device).</param>
    /// <param name="options">Iterations, optimizer, learning rate and its exponential decay, precision, device, threads; the batch size is whatever <paramref name="nextBatch"/> returns.</param>
    /// <param name="progress">Receives the mean log-likelihood per point every <see cref="TrainerOptions.ReportEvery"/> iterations.</param>
    /// <param name="cancellationToken">Stops after the current step; the parameters reached so far are kept and the result is marked cancelled.</param>
    public static FitResult Fit(FlowDistribution q, Func<Tensor> nextBatch, TrainerOptions options,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(nextBatch);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (!q.CanEvaluateLogProb)
            throw new NotSupportedException($"Density estimation needs log q at data points, but {q.Transform!.GetType().Name} has no inverse.");
        options.RequireBatchFits(q.Dimension);
        string flowName = q.Transform?.GetType().Name ?? "This flow";
        return Run(q, (dtype, device) => q.LogProb(nextBatch().to(dtype).to(device)), flowName, options, progress, cancellationToken);
    }

    /// <summary>
    /// Conditional density estimation: fits q(x | c) by maximum likelihood on minibatches of (points [B, d],
    /// contexts [B, c] or null without context) that a caller streams in. Same loop, skipping and reporting as
    /// the unconditional <see cref="Fit(FlowDistribution, Func{Tensor}, TrainerOptions, IProgress{TrainingProgress}?, CancellationToken)"/>.
    /// </summary>
    public static FitResult Fit(ConditionalFlowDistribution q, Func<(Tensor Points, Tensor? Context)> nextBatch, TrainerOptions options,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(nextBatch);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        options.RequireBatchFits(q.Dimension + q.ContextDimension);
        return Run(q, (dtype, device) =>
        {
            var (points, context) = nextBatch();
            return q.LogProb(points.to(dtype).to(device), context?.to(dtype).to(device));
        }, nameof(ConditionalFlowDistribution), options, progress, cancellationToken);
    }

    // The one training loop: minimizes −mean log q over the batches logProbOfNextBatch returns, skipping
    // (and counting) steps whose loss or gradient is not finite. Nothing is read back to the host per step; the
    // step values are read every ReportEvery steps (non-finite steps in between are masked on the device, so a
    // divergence found there has cost time but not the parameters).
    private static FitResult Run(nn.Module q, Func<ScalarType, Device, Tensor> logProbOfNextBatch,
        string flowName, TrainerOptions options, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        using var threads = TorchThreadScope.Enter(options.Threads);
        var device = DeviceSelector.Resolve(options.Device);
        q.to(options.DType).to(device);
        q.train();
        var parameters = q.parameters().ToList();
        if (parameters.Count == 0) throw new ArgumentException("The flow has no trainable parameters.", nameof(q));
        using var optimizer = VariationalTrainer.CreateOptimizer(parameters, options);

        var trace = new double[options.Iterations];
        var clock = Stopwatch.StartNew();
        int skipped = 0, consecutiveBad = 0, completed = 0, processed = 0, windowCount = 0;
        double windowSum = 0, learningRate = options.LearningRate;
        using var log = new DeferredStepLog();

        // Host-side bookkeeping of the steps read back from the device (rows: log-likelihood, max |gradient|).
        void Process(double[][] rows)
        {
            int rejected = 0;
            foreach (var row in rows)
            {
                int it = ++processed;
                double logLik = FlowOptimizer.WasAccepted(row[0], row[1]) ? row[0] : double.NaN;
                trace[it - 1] = logLik;
                if (double.IsFinite(logLik)) { consecutiveBad = 0; windowSum += logLik; windowCount++; }
                else
                {
                    skipped++;
                    rejected++;
                    if (++consecutiveBad >= options.MaxConsecutiveNonFiniteSteps)
                        throw new TrainingDivergedException(
                            $"Density estimation stopped at iteration {it}: {consecutiveBad} consecutive steps produced a non-finite log-likelihood or gradient. " +
                            $"Lower the learning rate (now {learningRate:g3}) or use Float64 precision.", it, "log q (flow)");
                }
                if (progress is not null && (it % options.ReportEvery == 0 || it == options.Iterations))
                {
                    progress.Report(new TrainingProgress(it, options.Iterations, windowCount > 0 ? windowSum / windowCount : double.NaN, learningRate, clock.Elapsed, skipped));
                    windowSum = 0;
                    windowCount = 0;
                }
            }
            optimizer.Uncount(rejected);
        }

        for (int it = 1; it <= options.Iterations; it++)
        {
            if (cancellationToken.IsCancellationRequested) break;
            using (var scope = torch.NewDisposeScope())
            {
                optimizer.ZeroGrad();
                var loss = -logProbOfNextBatch(options.DType, device).mean();
                if (!loss.requires_grad)
                    throw new NotSupportedException(
                        $"{flowName} computes log q at data points without gradients (a numerical inverse), " +
                        "so it cannot be fitted by maximum likelihood. Use a flow with an analytic inverse (radial, mean-field, full-rank, or a coupling/autoregressive preset).");
                loss.backward();
                // Decided on the device, read at report intervals.
                var logLikelihood = loss.detach().neg().to(optimizer.Gradients.dtype);
                var largest = optimizer.StepIfFinite(logLikelihood);
                log.Add(torch.stack(new[] { logLikelihood, largest }));
            }
            completed = it;
            if (options.LearningRateDecay < 1) optimizer.LearningRate = learningRate *= options.LearningRateDecay;
            if (it % options.ReportEvery == 0 || it == options.Iterations) Process(log.Read());
        }
        if (log.Pending > 0) Process(log.Read());
        clock.Stop();
        q.eval();
        return new FitResult(trace[..completed], skipped, clock.Elapsed, completed, completed < options.Iterations) { HostReads = log.Reads };
    }
}
