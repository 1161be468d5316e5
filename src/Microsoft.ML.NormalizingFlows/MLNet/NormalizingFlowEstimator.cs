using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Diagnostics;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Persistence;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.MLNet;

/// <summary>The base distribution a flow pushes forward.</summary>
public enum FlowBaseFamily
{
    /// <summary>N(0, I), fixed.</summary>
    StandardNormal,
    /// <summary>N(μ, diag σ²) with learnable μ and σ.</summary>
    DiagonalNormal,
}

/// <summary>
/// Fits a normalizing flow, either by variational inference against a <see cref="Targets.Target"/> or by
/// maximum likelihood on a vector column (density estimation). Create it through
/// <c>mlContext.Transforms.NormalizingFlow(...)</c> or <c>mlContext.Transforms.NormalizingFlowDensity(...)</c>.
/// </summary>
public sealed class NormalizingFlowEstimator : IEstimator<NormalizingFlowTransformer>
{
    /// <summary>Settings of a flow fit. Defaults: planar K = 32, Adam 1e-3, batch 256, 5,000 steps.</summary>
    public sealed class Options
    {
        public string SampleColumnName { get; set; } = "Sample";
        public string LogQColumnName { get; set; } = "LogQ";
        /// <summary>Variational mode only.</summary>
        public string LogPColumnName { get; set; } = "LogP";
        /// <summary>Variational mode only: log p̃ − log q.</summary>
        public string LogWeightColumnName { get; set; } = "LogWeight";
        /// <summary>Density estimation: the known-size vector-of-Single column to fit.</summary>
        public string InputColumnName { get; set; } = "Features";

        /// <summary>A <see cref="FlowFactory"/> preset (any of <see cref="FlowFactory.Names"/>: planar, radial, mean-field, full-rank, realnvp, nsf-coupling, iaf, maf, nsf-autoregressive, …); see docs/flows.md.</summary>
        public string Flow { get; set; } = "planar";
        /// <summary>Preset settings passed to <see cref="FlowFactory"/> and recorded in the saved model (e.g. "hidden" = "64", "bins" = "8"); see FlowFactory.SettingNames.</summary>
        public Dictionary<string, string>? FlowSettings { get; set; }
        /// <summary>Layers K (the flow's size).</summary>
        public int Layers { get; set; } = 32;
        public FlowBaseFamily BaseFamily { get; set; } = FlowBaseFamily.StandardNormal;
        public OptimizerKind Optimizer { get; set; } = OptimizerKind.Adam;
        public double LearningRate { get; set; } = 1e-3;
        /// <summary>Learning-rate schedule: the rate is multiplied by this after every step (1 = constant).</summary>
        public double LearningRateDecay { get; set; } = 1.0;
        /// <summary>Draws (VI) or data rows (density estimation) per step.</summary>
        public int BatchSize { get; set; } = 256;
        /// <summary>Optimizer steps.</summary>
        public int Iterations { get; set; } = 5_000;
        /// <summary>Seeds the initialization, the training draws/shuffles and the transformer's draws; null: taken from the MLContext's seed.</summary>
        public long? Seed { get; set; }
        /// <summary>"cpu", "cuda", "cuda:N" or "auto".</summary>
        public string Device { get; set; } = "cpu";
        public Precision Precision { get; set; } = Precision.Float32;
        /// <summary>TorchSharp intra-op threads while fitting (null: unchanged).</summary>
        public int? Threads { get; set; }
        /// <summary>Density estimation: standardize the data (per-coordinate mean and sd from a first pass) before the flow; the fitted q is on the original scale.</summary>
        public bool Standardize { get; set; } = true;
        /// <summary>Rows per computed block when transforming (clipped to the rows of a smaller input; at most 2^26 values per block).</summary>
        public int BlockSize { get; set; } = 1024;

        // ---- the trainer's full settings (variational mode; density estimation uses the optimizer, rate, decay and divergence count) ----

        /// <summary>The objective; null is the ELBO. E.g. <c>new ImportanceWeightedElboObjective(10, GradientEstimator.DoublyReparameterized)</c>
        /// (IW-ELBO), or <c>new ImportanceWeightedElboObjective(1)</c> to drop draws where the target is not finite.</summary>
        public VariationalObjective? Objective { get; set; }
        /// <summary>Rescale the gradient to this global L2 norm when it is larger (null: no clipping).</summary>
        public double? GradientClipNorm { get; set; }
        /// <summary>The learning-rate schedule (null: exponential with <see cref="LearningRateDecay"/>); e.g. <c>LearningRateSchedule.Cosine()</c>.</summary>
        public LearningRateSchedule? Schedule { get; set; }
        /// <summary>A wall-time budget for fitting; schedules anneal by iterations or time, whichever runs out first (null: none).</summary>
        public TimeSpan? TimeLimit { get; set; }
        /// <summary>Linear warm-up over this many steps (0: none).</summary>
        public int WarmupIterations { get; set; }
        /// <summary>Steps per window of the smoothed ELBO (keep-best, early stopping, divergence).</summary>
        public int ConvergenceWindow { get; set; } = 100;
        /// <summary>Stop when the smoothed ELBO has not improved by <see cref="EarlyStoppingTolerance"/> for this many windows (null: never).</summary>
        public int? EarlyStoppingPatience { get; set; }
        /// <summary>Improvement (nats) that counts as progress for early stopping.</summary>
        public double EarlyStoppingTolerance { get; set; } = 1e-3;
        /// <summary>Keep the parameters of the best smoothed-ELBO window at the end.</summary>
        public bool KeepBestParameters { get; set; } = true;
        /// <summary>Divergence: the smoothed ELBO falls this many nats below its best.</summary>
        public double DivergenceElboDrop { get; set; } = 1e3;
        /// <summary>Non-finite steps in a row after which training is declared diverged.</summary>
        public int MaxConsecutiveNonFiniteSteps { get; set; } = 20;
        /// <summary>On divergence throw <see cref="TrainingDivergedException"/> (default); false: keep the best parameters and report it in the fit report.</summary>
        public bool ThrowOnDivergence { get; set; } = true;
        /// <summary>Variational mode: draws for the fit report (PSIS k̂ on three independent sets, ESS, verdict) made after fitting and saved with the model; 0 skips it.</summary>
        public int ReportSamples { get; set; } = 10_000;
        /// <summary>Variational mode: also emit this column, the PSIS-smoothed importance weight of each draw normalized within its block to average 1 (null: not emitted).</summary>
        public string? WeightColumnName { get; set; }
        /// <summary>How often (in steps) progress is reported and logged.</summary>
        public int ReportEvery { get; set; } = 500;
        /// <summary>Receives progress on the fitting thread (ELBO in VI; mean log-likelihood in density estimation).</summary>
        public IProgress<TrainingProgress>? Progress { get; set; }
        /// <summary>Stops fitting after the current step; the transformer holds the flow as trained so far (cancelled before any step: Fit throws OperationCanceledException).</summary>
        public CancellationToken CancellationToken { get; set; }

        internal Options Clone()
        {
            var copy = (Options)MemberwiseClone();
            copy.FlowSettings = FlowSettings is null ? null : new Dictionary<string, string>(FlowSettings);
            return copy;
        }
    }

    private readonly IHost host;
    private readonly Options options;
    private readonly Target? target;

    internal NormalizingFlowEstimator(IHostEnvironment env, Target? target, Options options)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(options);
        host = env.Register("NormalizingFlow");
        this.target = target;
        this.options = options.Clone();
        Validate();
    }

    /// <summary>Variational inference (a target was given) or density estimation.</summary>
    public FlowFitMode Mode => target is null ? FlowFitMode.DensityEstimation : FlowFitMode.VariationalInference;

    private void Validate()
    {
        var o = options;
        if (string.IsNullOrWhiteSpace(o.Flow)) throw new ArgumentException("A flow preset is required.", nameof(Options.Flow));
        if (!FlowFactory.Names.Contains(o.Flow, StringComparer.OrdinalIgnoreCase))
            throw new ArgumentException($"Unknown flow '{o.Flow}'. Known flows: {string.Join(", ", FlowFactory.Names)}.", nameof(Options.Flow));
        if (o.Layers <= 0) throw new ArgumentOutOfRangeException(nameof(Options.Layers), o.Layers, "Layers must be positive.");
        if (o.BlockSize <= 0) throw new ArgumentOutOfRangeException(nameof(Options.BlockSize), o.BlockSize, "BlockSize must be positive.");
        if (target is not null) NormalizingFlowTransformer.CheckBlockSize(o.BlockSize, target.Dimension, nameof(Options.BlockSize));
        if (o.ReportSamples != 0 && o.ReportSamples < 100)
            throw new ArgumentOutOfRangeException(nameof(Options.ReportSamples), o.ReportSamples, "ReportSamples must be 0 (no report) or at least 100 draws.");
        if (o.WeightColumnName is not null && target is null)
            throw new ArgumentException("WeightColumnName is for variational inference (importance weights need a target); density estimation has none.", nameof(Options.WeightColumnName));
        if (!Enum.IsDefined(o.BaseFamily)) throw new ArgumentOutOfRangeException(nameof(Options.BaseFamily), o.BaseFamily, "Unknown base family.");
        FlowColumnNames.Create(target is not null, o.SampleColumnName, o.LogQColumnName, o.LogPColumnName, o.LogWeightColumnName, o.WeightColumnName);
        if (target is null && string.IsNullOrWhiteSpace(o.InputColumnName))
            throw new ArgumentException("Density estimation needs an input column name.", nameof(Options.InputColumnName));
        TrainerOptions(0).Validate();
    }

    private TrainerOptions TrainerOptions(long seed) => new()
    {
        Iterations = options.Iterations,
        BatchSize = options.BatchSize,
        LearningRate = options.LearningRate,
        LearningRateDecay = options.LearningRateDecay,
        Optimizer = options.Optimizer,
        Seed = seed,
        Device = options.Device,
        Precision = options.Precision,
        Threads = options.Threads,
        ReportEvery = options.ReportEvery,
        Objective = options.Objective,
        GradientClipNorm = options.GradientClipNorm,
        Schedule = options.Schedule,
        TimeLimit = options.TimeLimit,
        WarmupIterations = options.WarmupIterations,
        ConvergenceWindow = options.ConvergenceWindow,
        EarlyStoppingPatience = options.EarlyStoppingPatience,
        EarlyStoppingTolerance = options.EarlyStoppingTolerance,
        KeepBestParameters = options.KeepBestParameters,
        DivergenceElboDrop = options.DivergenceElboDrop,
        MaxConsecutiveNonFiniteSteps = options.MaxConsecutiveNonFiniteSteps,
        ThrowOnDivergence = options.ThrowOnDivergence,
    };

    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        if (target is null)
        {
            if (!inputSchema.TryFindColumn(options.InputColumnName, out var column))
                throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Column '{options.InputColumnName}' was not found in the input schema.");
            if (column.Kind != SchemaShape.Column.VectorKind.Vector || column.ItemType != NumberDataViewType.Single)
                throw new ArgumentOutOfRangeException(nameof(inputSchema),
                    $"Column '{options.InputColumnName}' must be a known-size vector of Single, but it is a {column.Kind} of {column.ItemType}.");
        }
        var columns = inputSchema.ToDictionary(c => c.Name);
        void Add(string name, SchemaShape.Column.VectorKind kind) =>
            columns[name] = new SchemaShape.Column(name, kind, NumberDataViewType.Single, false);
        // Density estimation scores rows (LogQ of the input column); variational inference appends draws.
        if (target is null)
        {
            Add(options.LogQColumnName, SchemaShape.Column.VectorKind.Scalar);
            return new SchemaShape(columns.Values);
        }
        Add(options.SampleColumnName, SchemaShape.Column.VectorKind.Vector);
        Add(options.LogQColumnName, SchemaShape.Column.VectorKind.Scalar);
        Add(options.LogPColumnName, SchemaShape.Column.VectorKind.Scalar);
        Add(options.LogWeightColumnName, SchemaShape.Column.VectorKind.Scalar);
        if (options.WeightColumnName is not null) Add(options.WeightColumnName, SchemaShape.Column.VectorKind.Scalar);
        return new SchemaShape(columns.Values);
    }

    /// <summary>
    /// Variational mode: trains against the target; <paramref name="input"/> is used only for its schema (it may be
    /// empty). Density mode: trains on the input column, streamed in minibatches through cursors.
    /// </summary>
    public NormalizingFlowTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        long seed = options.Seed ?? host.Rand.NextInt64();
        using var ch = host.Start("Fit");
        var names = FlowColumnNames.Create(target is not null, options.SampleColumnName, options.LogQColumnName, options.LogPColumnName, options.LogWeightColumnName, options.WeightColumnName);
        IReadOnlyList<string>? slotNames = target?.CoordinateNames;
        FitReportSummary? report = null;
        var baseFamily = options.BaseFamily == FlowBaseFamily.DiagonalNormal ? FlowDescription.DiagonalNormalBase : FlowDescription.StandardNormalBase;
        var trainer = TrainerOptions(seed);
        var progress = new ChannelProgress(ch, options.Progress, Mode);
        FlowDistribution flow;
        FitResult result;
        if (target is not null)
        {
            flow = new FlowDescription(Spec(target.Dimension, seed), baseFamily).Build();
            ch.Info($"Fitting flow '{options.Flow}' (K = {options.Layers}, d = {target.Dimension}) to target '{target.Name}' by variational inference: {options.Iterations} steps of {options.BatchSize} draws.");
            result = VariationalTrainer.Fit(flow, target, trainer, progress, options.CancellationToken);
            if (options.ReportSamples > 0 && result.Iterations > 0)
            {
                var full = Diagnostics.FitReport.Create(flow, target, result, options.ReportSamples, seed, blockSize: Math.Min(options.BlockSize, Evaluation.DefaultBlockSize));
                report = full.Summary();
                ch.Info(full.Format());
            }
        }
        else
        {
            var column = FlowColumnChecks.CheckVectorColumn(input.Schema, options.InputColumnName, 0, nameof(input));
            int d = ((VectorDataViewType)column.Type).Size;
            slotNames = SlotNamesOf(column, d);
            var stream = new MinibatchStream(input, column, options.BatchSize, seed);
            var (mean, sd, rows) = stream.Moments();
            if (rows < 2) throw new InvalidOperationException($"Density estimation needs at least 2 rows in column '{column.Name}'; the input has {rows}.");
            ch.Info($"Fitting flow '{options.Flow}' (K = {options.Layers}, d = {d}) to column '{column.Name}' ({rows} rows) by maximum likelihood: {options.Iterations} steps of {options.BatchSize} rows.");
            var description = new FlowDescription(Spec(d, seed), baseFamily,
                options.Standardize ? mean : null, options.Standardize ? sd.Select(s => s > 0 ? s : 1.0).ToArray() : null);
            flow = description.Build();
            try
            {
                result = MaximumLikelihoodTrainer.Fit(flow, stream.Next, trainer, progress, options.CancellationToken);
            }
            catch (NotSupportedException e)
            {
                throw new NotSupportedException($"Flow '{options.Flow}' cannot be fitted by density estimation (Options.Flow): {e.Message}", e);
            }
        }
        if (result.Cancelled && result.Iterations == 0)
        {
            // Nothing was trained: a transformer over an untrained flow would silently emit draws from the initialization.
            throw new OperationCanceledException("Fitting the flow was cancelled before the first step; there is no fitted flow to transform with.", options.CancellationToken);
        }
        if (result.Cancelled) ch.Warning($"Fitting was cancelled after {result.Iterations} of {options.Iterations} steps.");
        ch.Info($"Fitted in {result.Elapsed.TotalSeconds:F1} s ({result.SkippedSteps} skipped steps).");
        var transformer = new NormalizingFlowTransformer(host, flow, Mode, names, seed, options.BlockSize, target,
            NormalizingFlowTransformer.GalleryName(target), target is null ? options.InputColumnName : null, slotNames, report)
        { TrainingResult = result };
        return transformer;
    }

    /// <summary>The column's slot names (e.g. from Concatenate or a text loader's header), or null when it has none.</summary>
    private static string[]? SlotNamesOf(DataViewSchema.Column column, int d)
    {
        if (column.Annotations.Schema.GetColumnOrNull(AnnotationUtils.Kinds.SlotNames) is null) return null;
        VBuffer<ReadOnlyMemory<char>> names = default;
        column.GetSlotNames(ref names);
        if (names.Length != d) return null;
        var dense = names.DenseValues().Select(n => n.ToString()).ToArray();
        return dense.All(string.IsNullOrEmpty) ? null : dense;
    }

    private FlowSpec Spec(int dimension, long seed) =>
        new(options.Flow.ToLowerInvariant(), dimension, options.Layers, seed, options.FlowSettings is { Count: > 0 } s ? new Dictionary<string, string>(s) : null);

    /// <summary>Forwards progress to ML.NET's log (channel) and to the user's IProgress.</summary>
    private sealed class ChannelProgress(IChannel ch, IProgress<TrainingProgress>? user, FlowFitMode mode) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value)
        {
            string what = mode == FlowFitMode.VariationalInference ? "ELBO" : "mean log-likelihood";
            ch.Info($"step {value.Iteration}/{value.Iterations}: {what} {value.Elbo:F4}, learning rate {value.LearningRate:g3}, {value.Elapsed.TotalSeconds:F1} s");
            user?.Report(value);
        }
    }
}

/// <summary>
/// Streams minibatches of a vector column through cursors: one row at a time into a [B, d] buffer, a new
/// (shuffled when the view can shuffle) cursor each epoch. Only one minibatch is in memory.
/// NaN or infinite values stop the fit with an error naming the column and row.
/// </summary>
internal sealed class MinibatchStream(IDataView data, DataViewSchema.Column column, int batchSize, long seed)
{
    private readonly int d = ((VectorDataViewType)column.Type).Size;
    private DataViewRowCursor? cursor;
    private ValueGetter<VBuffer<float>>? getter;
    private int epoch;
    private VBuffer<float> row;

    /// <summary>A first pass: per-coordinate mean and sd (and the NaN check).</summary>
    public (double[] Mean, double[] Sd, long Rows) Moments()
    {
        var sum = new double[d];
        var sumSquares = new double[d];
        long rows = 0;
        using var c = data.GetRowCursor(new[] { column });
        var get = c.GetGetter<VBuffer<float>>(column);
        var dense = new float[d];
        while (c.MoveNext())
        {
            Read(get, c.Position, dense);
            for (int j = 0; j < d; j++) { sum[j] += dense[j]; sumSquares[j] += (double)dense[j] * dense[j]; }
            rows++;
        }
        var mean = sum.Select(s => rows > 0 ? s / rows : 0).ToArray();
        var sd = sumSquares.Select((s, j) => rows > 1 ? Math.Sqrt(Math.Max(0, (s - rows * mean[j] * mean[j]) / (rows - 1))) : 1).ToArray();
        return (mean, sd, rows);
    }

    public Tensor Next()
    {
        var buffer = new float[batchSize * d];
        var dense = new float[d];
        int filled = 0, emptyEpochs = 0;
        while (filled < batchSize)
        {
            if (cursor is null)
            {
                var rand = data.CanShuffle ? new Random(unchecked((int)(seed * 31 + epoch))) : null;
                cursor = data.GetRowCursor(new[] { column }, rand);
                getter = cursor.GetGetter<VBuffer<float>>(column);
                epoch++;
            }
            if (!cursor.MoveNext())
            {
                cursor.Dispose();
                cursor = null;
                if (filled == 0 && ++emptyEpochs > 1) throw new InvalidOperationException($"Column '{column.Name}' has no rows to train on.");
                continue;
            }
            Read(getter!, cursor.Position, dense);
            dense.CopyTo(buffer, filled * d);
            filled++;
        }
        return torch.tensor(buffer, new long[] { batchSize, d });
    }

    private void Read(ValueGetter<VBuffer<float>> get, long position, float[] dense)
    {
        get(ref row);
        if (row.Length != d)
            throw new InvalidOperationException($"Row {position} of column '{column.Name}' has {row.Length} values; expected {d}.");
        row.CopyTo(dense);
        for (int j = 0; j < d; j++)
            if (!float.IsFinite(dense[j]))
                throw new InvalidOperationException($"Column '{column.Name}' has a non-finite value ({dense[j]}) at row {position}, coordinate {j}: remove or impute missing values before fitting a flow.");
    }
}
