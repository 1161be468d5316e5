using System.Diagnostics;
using Microsoft.ML.NormalizingFlows.Diagnostics;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;
using Microsoft.ML.NormalizingFlows.Training.Optimizers;
using Microsoft.ML.NormalizingFlows.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling;

/// <summary>One stage of a posterior fit, for the record.</summary>
public sealed record PosteriorFitStage(string Name, TimeSpan Elapsed, double Elbo, string Detail);

/// <summary>A fitted posterior approximation: q on the unconstrained scale, its fit report, and draws by name.</summary>
public sealed class PosteriorFit
{
    internal PosteriorFit(BayesianModel model, FlowDistribution q, FitReport report, IReadOnlyList<PosteriorFitStage> stages, TimeSpan elapsed)
    {
        Model = model;
        Approximation = q;
        Report = report;
        Stages = stages;
        Elapsed = elapsed;
    }

    public BayesianModel Model { get; }

    /// <summary>q over the model's unconstrained coordinates (float64).</summary>
    public FlowDistribution Approximation { get; }

    /// <summary>ELBO, k̂ on independent draws, ESS and the verdict.</summary>
    public FitReport Report { get; }

    public IReadOnlyList<PosteriorFitStage> Stages { get; }

    /// <summary>Wall time of the whole recipe (every stage, the report included).</summary>
    public TimeSpan Elapsed { get; }

    /// <summary>S draws by parameter name on the constrained scale, with PSIS weights.</summary>
    public PosteriorDraws Draws(int count = 10_000, long seed = 7) => PosteriorDraws.Draw(Model, Approximation, count, seed);

    /// <summary>The summary table of <paramref name="count"/> fresh draws.</summary>
    public PosteriorSummary Summary(int count = 10_000) => Draws(count).Summary(Report.Verdict);
}

/// <summary>
/// The default recipe for a <see cref="BayesianModel"/> (docs/models.md), in float64:
/// (1) the mode of log p̃ by Adam from z = 0; (2) a full-rank Gaussian by reverse KL started there (sticking-the-
/// landing gradients, cosine schedule); (3) a normalizing flow trained on top of that Gaussian's affine map, so its
/// layers see a roughly standardized, decorrelated posterior whatever the model's scales (the posteriordb models
/// have condition numbers up to 1e5); two or more independent flow fits, more when their ELBOs disagree, the best
/// kept; (4) the fit report. <see cref="ApproximationFamily"/> stops at the Gaussian instead.
/// </summary>
public static class PosteriorFitter
{
    /// <summary>Fits q to the model's posterior with the default recipe (or the given settings).</summary>
    public static PosteriorFit Fit(this BayesianModel model, PosteriorFitOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        var o = options ?? new PosteriorFitOptions();
        o.Validate();
        var target = model.AsTarget();
        var clock = Stopwatch.StartNew();
        var stages = new List<PosteriorFitStage>();
        using var threads = TorchThreadScope.Enter(o.Threads);

        var mode = FindMode(target, o, stages, cancellationToken);
        var settings = model.Minibatches is { } stream ? StreamedSettings(target, mode, stream, stages) : new StageSettings(DefaultDivergenceDrop, 1);
        FlowDistribution q;
        FitResult fit;
        if (o.Family == ApproximationFamily.MeanFieldGaussian)
            (q, fit) = FitGaussian(target, new DiagonalNormal(target.Dimension, GaussianInitialScale), mode, o, settings, stages, "mean-field Gaussian", cancellationToken);
        else
        {
            var (gaussian, gaussianFit) = FitGaussian(target, new FullRankNormal(target.Dimension, GaussianInitialScale), mode, o, settings, stages, "full-rank Gaussian", cancellationToken);
            (q, fit) = o.Family == ApproximationFamily.FullRankGaussian ? (gaussian, gaussianFit)
                : FitFlows(target, model.Minibatches is not null, (FullRankNormal)gaussian.Base, o, settings, stages, cancellationToken);
        }
        var reportClock = Stopwatch.StartNew();
        var report = FitReport.Create(q, target, fit, o.ReportSamples, o.Seed + 1);
        stages.Add(new PosteriorFitStage("report", reportClock.Elapsed, report.Elbo.Mean, $"k̂ {report.VerdictParetoK:F2}, {report.Verdict}"));
        return new PosteriorFit(model, q, report, stages, clock.Elapsed);
    }

    /// <summary>How often the mode search reads its state back to the host.</summary>
    private const int ModeReadEvery = 100;

    private static Tensor FindMode(Target target, PosteriorFitOptions o, List<PosteriorFitStage> stages, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var parameter = new TorchSharp.Modules.Parameter(torch.zeros(1, target.Dimension, dtype: ScalarType.Float64));
        using var optimizer = new AdamOptimizer(new[] { parameter }, o.ModeLearningRate);
        // The best value and point, and whether a step has left the density's domain, live on the device: the loop
        // reads them back every ModeReadEvery steps (to stop early) instead of every step. Once a value is not finite
        // (stepped somewhere the density is not defined) no further step is applied, as if the loop had stopped there.
        using var best = torch.full(new long[] { 1 }, S(double.NegativeInfinity), dtype: ScalarType.Float64).DetachFromDisposeScope();
        var bestZ = parameter.detach().clone().DetachFromDisposeScope();
        using var running = torch.ones(1, dtype: ScalarType.Bool).DetachFromDisposeScope();
        for (int it = 0; it < o.ModeIterations && !cancellationToken.IsCancellationRequested; it++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                optimizer.ZeroGrad();
                var logP = target.Evaluate(parameter);
                running.logical_and_(logP.detach().isfinite());
                using (torch.no_grad())
                {
                    var better = running.logical_and(logP.detach() > best);
                    best.copy_(torch.where(better, logP.detach(), best));
                    bestZ.copy_(torch.where(better.unsqueeze(1), parameter.detach(), bestZ));
                }
                logP.neg().sum().backward();
                optimizer.LearningRate = o.ModeLearningRate * 0.5 * (1 + Math.Cos(Math.PI * it / Math.Max(1, o.ModeIterations)));
                optimizer.Step(running.squeeze(0));
            }
            if ((it + 1) % ModeReadEvery == 0 && !running.item<bool>()) break;
        }
        double bestValue = best.item<double>();
        stages.Add(new PosteriorFitStage("mode", clock.Elapsed, double.NaN, double.IsFinite(bestValue) ? $"log p̃ at the mode {bestValue:F3}" : "no finite value: started at 0"));
        return bestZ.squeeze(0);
    }

    /// <summary>
    /// What every training stage of one fit shares. A streamed likelihood's gradient carries the minibatch's noise,
    /// while Adam moves every parameter about one learning rate per step whatever the noise: a plain N/B-scaled
    /// estimate's noise then random-walks the Gaussian's Cholesky entries far beyond the posterior's scale (an
    /// ill-conditioned factor, and absurd ELBO estimates). See <see cref="StreamedSettings"/>.
    /// </summary>
    private sealed record StageSettings(double DivergenceDrop, double LearningRateScale);

    private static readonly double DefaultDivergenceDrop = new TrainerOptions().DivergenceElboDrop;

    /// <summary>
    /// The minibatch noise is measured at the mode, the log density's spread over 32 minibatches (sd nats), and sets:
    /// the divergence test, which would take a noisy ELBO (N/B × the batch sum: thousands of nats for a million rows)
    /// for a divergence, allowed ten times the noise of a window's mean; and the learning rates, divided by
    /// √(clamp(sd / 1 nat, 1, N/B)). A plain estimate's noise is thousands of nats, so that is √(N/B); a
    /// control-variate estimate (<see cref="Regression.BinomialLogitControlVariate"/>) is precise to well under a nat
    /// near the posterior, below the draws' own noise in a step's ELBO, and trains at the in-memory rates.
    /// </summary>
    private static StageSettings StreamedSettings(Target target, Tensor mode, MinibatchSource stream, List<PosteriorFitStage> stages)
    {
        var clock = Stopwatch.StartNew();
        double sd = MinibatchNoise(target, mode), ratio = Math.Max(1.0, stream.Rows / (double)stream.BatchSize);
        var settings = double.IsNaN(sd) ? new StageSettings(DefaultDivergenceDrop, 1 / Math.Sqrt(ratio))
            : new StageSettings(Math.Max(DefaultDivergenceDrop, 10 * sd / Math.Sqrt(new TrainerOptions().ConvergenceWindow)), 1 / Math.Sqrt(Math.Clamp(sd, 1.0, ratio)));
        stages.Add(new PosteriorFitStage("minibatch noise", clock.Elapsed, double.NaN, string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"log p̃ at the mode varies by sd {sd:G3} nats over 32 minibatches (N/B {ratio:G4}): learning rates × {settings.LearningRateScale:G3}")));
        return settings;
    }

    /// <summary>The sd of the log density at <paramref name="mode"/> over 32 minibatches (NaN when fewer than 2 values are finite).</summary>
    private static double MinibatchNoise(Target target, Tensor mode)
    {
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var point = mode.unsqueeze(0);
        var values = Enumerable.Range(0, 32).Select(_ => target.Evaluate(point).item<double>()).Where(double.IsFinite).ToArray();
        if (values.Length < 2) return double.NaN;
        double mean = values.Average();
        return Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Length - 1));
    }

    private static TrainerOptions Training(PosteriorFitOptions o, StageSettings settings, int iterations, double learningRate, int batch, long seed) => new()
    {
        DivergenceElboDrop = settings.DivergenceDrop,
        LearningRate = learningRate * settings.LearningRateScale,
        Iterations = iterations,
        BatchSize = batch,
        Precision = Precision.Float64,
        Schedule = LearningRateSchedule.Cosine(0.02),
        WarmupIterations = Math.Min(200, iterations / 10),
        Objective = new ImportanceWeightedElboObjective(1, GradientEstimator.StickingTheLanding),
        TimeLimit = o.StageTimeLimit,
        Seed = seed,
        ReportEvery = Math.Max(1, iterations / 20),
        ThrowOnDivergence = false,
    };

    private static (FlowDistribution Q, FitResult Fit) FitGaussian(Target target, BaseDistribution family, Tensor mode,
        PosteriorFitOptions o, StageSettings settings, List<PosteriorFitStage> stages, string name, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        var units = CurvatureUnits(target, mode, GaussianInitialScale);
        bool rescaled = units.Any(u => u < 1);
        // In units of the mode's curvature where it is narrower than the initial scale: the Gaussian is fitted as
        // mode + units ⊙ x, x ~ N(μ̃, L̃L̃ᵀ) starting at μ̃ = 0, and folded back into one Gaussian afterwards.
        var center = HostVector(mode);
        var q = rescaled ? new FlowDistribution(family, new FixedAffineTransform(center, units)) : new FlowDistribution(family);
        q.to(ScalarType.Float64);
        if (!rescaled)
            using (torch.no_grad())
            {
                var loc = family.named_parameters().First(p => p.name == "loc").parameter;
                loc.copy_(mode.to(loc.dtype));
            }
        var fit = VariationalTrainer.Fit(q, target, Training(o, settings, o.GaussianIterations, o.GaussianLearningRate, o.GaussianBatchSize, o.Seed),
            Report(o, name), cancellationToken);
        if (rescaled)
        {
            FoldUnitsIntoGaussian(family, center, units);
            q = new FlowDistribution(family);
            q.to(ScalarType.Float64);
        }
        var elbo = Evaluation.EstimateElbo(q, target, o.EvaluationDraws, o.Seed + 11);
        stages.Add(new PosteriorFitStage(name, clock.Elapsed, elbo.Elbo, StageDetail(fit)));
        return (q, fit);
    }

    /// <summary>The Gaussian stage's initial standard deviation in every coordinate (before <see cref="CurvatureUnits"/>).</summary>
    internal const double GaussianInitialScale = 0.1;

    /// <summary>Central-difference step of <see cref="CurvatureUnits"/>, relative to max(1, |mode|).</summary>
    private const double CurvatureStep = 1e-5;

    /// <summary>The smallest unit <see cref="CurvatureUnits"/> gives a coordinate (a curvature 1e8 times the initial scale's).</summary>
    private const double SmallestUnit = 1e-4;

    /// <summary>
    /// Per-coordinate units for the Gaussian stage: r_i = (1/√(−∂²log p̃/∂z_i²) at the mode) / <paramref name="initialScale"/>,
    /// clamped to [1e-4, 1], and 1 where the curvature is not negative or not finite. Adam moves every parameter by about
    /// one learning rate per step whatever its scale, so where the posterior is a thousand times narrower than the
    /// initial q (a centred multilevel model at a million rows: sds near 1e-3 beside scales near 1) each step threw
    /// those coordinates tens of sds and the stage diverged. In these units every coordinate starts about as wide as the
    /// posterior's conditional sd, and steps are a fraction of it. Posteriors no narrower than the initial scale get
    /// units of 1 everywhere, and the stage is exactly what it was. The second derivatives come from central differences
    /// of the gradient at 2d points in one batch (one forward and backward pass; no double backward, which a model's
    /// own fused kernels need not support).
    /// </summary>
    internal static double[] CurvatureUnits(Target target, Tensor mode, double initialScale)
    {
        int d = target.Dimension;
        var curvature = new double[d];
        using (var scope = torch.NewDisposeScope())
        {
            var center = mode.detach().to(ScalarType.Float64).reshape(1, d);
            var step = center.abs().clamp_min(S(1.0)).mul_(S(CurvatureStep)).reshape(d);
            // Coordinates in blocks, so that the batch of displaced points stays [2 × block, d] whatever d is.
            for (int start = 0; start < d; start += CurvatureBlock)
            {
                int count = Math.Min(CurvatureBlock, d - start);
                var blockStep = step.narrow(0, start, count);
                var offsets = torch.zeros(count, d, dtype: ScalarType.Float64, device: center.device);
                offsets.narrow(1, start, count).copy_(torch.diag(blockStep));
                var points = torch.cat(new[] { center.Plus(offsets), center - offsets }, 0).requires_grad_(true);
                using var enableGrad = torch.enable_grad();
                var logP = target.Evaluate(points);
                var gradient = torch.autograd.grad(new[] { logP.sum() }, new[] { points })[0].narrow(1, start, count);
                var second = (gradient[..count].diagonal() - gradient[count..].diagonal()) / (blockStep * S(2));
                second.detach().cpu().data<double>().ToArray().CopyTo(curvature, start);
            }
        }
        var units = new double[d];
        for (int i = 0; i < d; i++)
        {
            double negative = -curvature[i];
            units[i] = double.IsFinite(negative) && negative > 0 ? Math.Clamp(1 / Math.Sqrt(negative) / initialScale, SmallestUnit, 1) : 1;
        }
        return units;
    }

    /// <summary>Coordinates per batch in <see cref="CurvatureUnits"/>.</summary>
    private const int CurvatureBlock = 128;

    private static double[] HostVector(Tensor t)
    {
        using var noGrad = torch.no_grad();
        return t.detach().to(ScalarType.Float64).cpu().contiguous().data<double>().ToArray();
    }

    /// <summary>
    /// A Gaussian fitted as mode + r ⊙ x, x ~ N(μ̃, L̃L̃ᵀ), rewritten as the same Gaussian N(mode + r ⊙ μ̃, (diag r L̃)(diag r L̃)ᵀ)
    /// in the family's own parameters: μ = mode + r ⊙ μ̃; the Cholesky factor's row i times r_i (its log diagonal plus
    /// log r_i), for full-rank and diagonal alike.
    /// </summary>
    internal static void FoldUnitsIntoGaussian(BaseDistribution family, double[] mode, double[] units)
    {
        using var noGrad = torch.no_grad();
        var parameters = family.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        var r = torch.tensor(units, dtype: parameters["loc"].dtype, device: parameters["loc"].device);
        var center = torch.tensor(mode, dtype: r.dtype, device: r.device);
        parameters["loc"].mul_(r).add_(center, S(1));
        if (parameters.TryGetValue("logScale", out var logScale)) logScale.add_(r.log(), S(1));
        if (parameters.TryGetValue("logDiagonal", out var logDiagonal)) logDiagonal.add_(r.log(), S(1));
        if (parameters.TryGetValue("offDiagonal", out var offDiagonal)) offDiagonal.mul_(r.unsqueeze(1));
    }

    private static (FlowDistribution Q, FitResult Fit) FitFlows(Target target, bool streams, FullRankNormal gaussian, PosteriorFitOptions o,
        StageSettings settings, List<PosteriorFitStage> stages, CancellationToken cancellationToken)
    {
        double[] mean;
        double[,] factor;
        using (torch.no_grad())
        {
            mean = HostVector(gaussian.Location);
            var l = gaussian.CholeskyFactor.to(ScalarType.Float64);
            int d = mean.Length;
            var flat = l.data<double>().ToArray();
            factor = new double[d, d];
            for (int i = 0; i < d; i++) for (int j = 0; j <= i; j++) factor[i, j] = flat[i * d + j];
        }
        var fits = new List<(FlowDistribution Q, FitResult Fit, double Elbo, double StandardError)>();
        // A streamed model reads one cursor, so its fits cannot share it; otherwise fits run one per core.
        int width = o.ParallelFlowFits && !streams ? Math.Max(1, Environment.ProcessorCount) : 1;
        int attempts = 0;
        while (true)
        {
            int count = attempts < o.FlowFits ? Math.Min(o.FlowFits - attempts, width)
                : Math.Min(width, o.FlowFits + o.MaxRestarts - attempts);
            var round = RunFits(Enumerable.Range(attempts, count).ToArray(), attempt => FitFlow(target, streams, mean, factor, attempt, o, settings, cancellationToken));
            foreach (var (q, fit, elbo, standardError, stage) in round)
            {
                fits.Add((q, fit, elbo, standardError));
                stages.Add(stage);
            }
            attempts += count;
            if (cancellationToken.IsCancellationRequested) break;
            if (attempts < o.FlowFits) continue;
            var finite = fits.Where(f => double.IsFinite(f.Elbo)).Select(f => (f.Elbo, f.StandardError)).ToArray();
            bool agree = finite.Length >= Math.Min(2, o.FlowFits) && Agree(finite.MaxBy(f => f.Elbo), finite.MinBy(f => f.Elbo), o.RestartTolerance);
            if (agree || attempts >= o.FlowFits + o.MaxRestarts) break;
        }
        var best = fits.OrderByDescending(f => double.IsFinite(f.Elbo) ? f.Elbo : double.NegativeInfinity).First();
        return (best.Q, best.Fit);
    }

    /// <summary>
    /// Runs the fits, concurrently when there is more than one: each on its own thread with one libtorch thread
    /// (libtorch's intra-op pool is process-wide; two fits on two threads each would oversubscribe the cores).
    /// Results come back in attempt order, and the first failure is rethrown as it was.
    /// </summary>
    private static T[] RunFits<T>(int[] attempts, Func<int, T> fit)
    {
        if (attempts.Length == 1) return new[] { fit(attempts[0]) };
        using var threads = TorchThreadScope.Enter(1);
        var results = new T[attempts.Length];
        var errors = new System.Runtime.ExceptionServices.ExceptionDispatchInfo?[attempts.Length];
        var workers = attempts.Select((attempt, i) => new Thread(() =>
        {
            try { results[i] = fit(attempt); }
            catch (Exception e) { errors[i] = System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e); }
        }, maxStackSize: 16 << 20) { IsBackground = true, Name = $"flow fit {attempt + 1}" }).ToArray();
        foreach (var w in workers) w.Start();
        foreach (var w in workers) w.Join();
        errors.FirstOrDefault(e => e is not null)?.Throw();
        return results;
    }

    /// <summary>
    /// Whether the best and the worst fit agree: their ELBOs differ by at most the tolerance beyond the estimates' noise
    /// (two standard errors of the difference). In memory that noise is left out (standard errors of 0): the draws'
    /// own is hundredths of a nat. A streamed likelihood's estimates carry the minibatches' noise (± 184–195 nats in
    /// MinibatchTests' stream): compared with the bare tolerance every streamed fit "disagreed" and ran all its restarts.
    /// </summary>
    internal static bool Agree((double Elbo, double StandardError) best, (double Elbo, double StandardError) worst, double tolerance) =>
        best.Elbo - worst.Elbo <= tolerance + 2 * Math.Sqrt(best.StandardError * best.StandardError + worst.StandardError * worst.StandardError);

    /// <summary>Blocks of draws, each evaluated on its own minibatch, whose means give a streamed ELBO's standard error.</summary>
    internal const int StreamedElboBlocks = 16;

    private static (FlowDistribution Q, FitResult Fit, double Elbo, double StandardError, PosteriorFitStage Stage) FitFlow(Target target, bool streams,
        double[] mean, double[,] factor, int attempt, PosteriorFitOptions o, StageSettings settings, CancellationToken cancellationToken)
    {
        long seed = o.Seed + 1_000 * (attempt + 1);
        var clock = Stopwatch.StartNew();
        // Built through a FlowDescription so that the preconditioned flow records how to rebuild it (FlowSerializer saves it).
        // Keys compare as the presets read them (ignoring case), so that a user's "Hidden" keeps its value.
        var flowSettings = o.FlowSettings is { } s ? new Dictionary<string, string>(s, StringComparer.OrdinalIgnoreCase) : new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        flowSettings.TryAdd("hidden", o.FlowHiddenFor(target.Dimension).ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (o.FlowPermutationFor() is { } permutation) flowSettings.TryAdd("permutation", permutation);
        var spec = new FlowSpec(o.Flow.ToLowerInvariant(), target.Dimension, o.FlowLayers, seed, flowSettings);
        var q = new Persistence.FlowDescription(spec, DType: "Float64", PreconditionMean: mean, PreconditionCholesky: Flatten(factor)).Build();
        var options = Training(o, settings, o.FlowIterations, o.FlowLearningRate, o.FlowBatchSize, seed);
        if (o.FlowObjective is { } objective) options.Objective = objective;
        var fit = VariationalTrainer.Fit(q, target, options, Report(o, $"flow {attempt + 1}"), cancellationToken);
        var (elbo, standardError) = streams
            ? Evaluation.EstimateElboByBlockMeans(q, target, o.EvaluationDraws, seed + 11, StreamedElboBlocks)
            : (Evaluation.EstimateElbo(q, target, o.EvaluationDraws, seed + 11).Elbo, 0.0);
        var stage = new PosteriorFitStage($"flow {attempt + 1} ({o.Flow} K={o.FlowLayers}, seed {seed})", clock.Elapsed, elbo,
            StageDetail(fit) + (streams ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $", ELBO ± {standardError:F1} (minibatch noise)") : ""));
        return (q, fit, elbo, standardError, stage);
    }

    private static string StageDetail(FitResult fit) =>
        $"{fit.Iterations} steps, {fit.Status}" + (fit.DivergenceReason is { } reason ? $" ({reason})" : "");

    private static double[] Flatten(double[,] matrix)
    {
        int rows = matrix.GetLength(0), columns = matrix.GetLength(1);
        var flat = new double[rows * columns];
        for (int i = 0; i < rows; i++) for (int j = 0; j < columns; j++) flat[i * columns + j] = matrix[i, j];
        return flat;
    }

    private static IProgress<TrainingProgress>? Report(PosteriorFitOptions o, string stage) =>
        o.Progress is { } progress ? new StageProgress(progress, stage) : null;

    private sealed class StageProgress(IProgress<(string, TrainingProgress)> inner, string stage) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => inner.Report((stage, value));
    }
}
