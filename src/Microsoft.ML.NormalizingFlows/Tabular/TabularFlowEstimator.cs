using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Training;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tabular;

/// <summary>
/// Fits a flow to the rows of a table (synthetic data, row scoring), through
/// <c>mlContext.Transforms.TabularFlow(options)</c>. Each modelled column gets an encoding (see
/// <see cref="TabularColumnKind"/> and docs/synthetic-data.md) that maps it to a uniform u and its normal score; a
/// conditional spline-coupling flow (<see cref="ConditionalFlowDistribution"/>) learns the joint distribution of the
/// scores given the context columns, by maximum likelihood on minibatches of freshly dequantized rows.
/// </summary>
public sealed class TabularFlowEstimator : IEstimator<TabularFlowTransformer>
{
    /// <summary>What to model and how to train.</summary>
    public sealed class Options
    {
        /// <summary>The columns to model; null: every column of the data except the context columns.</summary>
        public IReadOnlyList<string>? Columns { get; set; }
        /// <summary>Columns the flow is conditioned on (generation can then be asked for rows with given values of them).</summary>
        public IReadOnlyList<string> ContextColumns { get; set; } = Array.Empty<string>();
        /// <summary>Per-column overrides (kind, level order, bounds), by column name.</summary>
        public IDictionary<string, TabularColumnOptions> ColumnOptions { get; set; } = new Dictionary<string, TabularColumnOptions>();
        /// <summary>Keep generated numbers within each column's training range (overridable per column).</summary>
        public bool RespectBounds { get; set; } = true;
        /// <summary>The most quantiles stored per numeric column (the model keeps quantiles, not rows).</summary>
        public int MaxKnots { get; set; } = 1000;
        /// <summary>Coupling layers, conditioner width and residual blocks, spline bins and interval.</summary>
        public ConditionalFlowSettings Flow { get; set; } = new();
        /// <summary>Optimizer steps.</summary>
        public int Iterations { get; set; } = 3000;
        /// <summary>Rows per step (drawn with replacement, dequantized afresh).</summary>
        public int BatchSize { get; set; } = 512;
        /// <summary>Adam's initial learning rate.</summary>
        public double LearningRate { get; set; } = 1e-3;
        /// <summary>The learning rate at the last step as a fraction of the first (exponential decay in between).</summary>
        public double FinalLearningRateFraction { get; set; } = 0.05;
        /// <summary>Seeds the encodings' jitter, the initial weights, the batches and the generated rows; null: from the MLContext.</summary>
        public int? Seed { get; set; }
        /// <summary>Device ("cpu", "cuda", "cuda:1", "auto").</summary>
        public string Device { get; set; } = "cpu";
        /// <summary>libtorch threads while fitting (null: libtorch's default).</summary>
        public int? Threads { get; set; }
        /// <summary>Progress every this many steps (mean log-likelihood of the flow's normal scores per row).</summary>
        public int ReportEvery { get; set; } = 500;
        public IProgress<TrainingProgress>? Progress { get; set; }
        /// <summary>The column Transform appends: each row's log-likelihood under the fitted model.</summary>
        public string LogLikelihoodColumnName { get; set; } = "LogLikelihood";
        /// <summary>Rows per tensor pass when generating or scoring.</summary>
        public int BlockRows { get; set; } = 8192;
    }

    private readonly IHostEnvironment env;
    private readonly Options options;

    public TabularFlowEstimator(IHostEnvironment env, Options? options = null)
    {
        this.env = env ?? throw new ArgumentNullException(nameof(env));
        this.options = options ?? new Options();
        Validate(this.options);
    }

    private static void Validate(Options o)
    {
        ArgumentNullException.ThrowIfNull(o.ContextColumns, nameof(Options.ContextColumns));
        ArgumentNullException.ThrowIfNull(o.ColumnOptions, nameof(Options.ColumnOptions));
        ArgumentNullException.ThrowIfNull(o.Flow, nameof(Options.Flow));
        o.Flow.Validate();
        if (o.Iterations <= 0) throw new ArgumentOutOfRangeException(nameof(Options.Iterations), o.Iterations, "Iterations must be positive.");
        if (o.BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(Options.BatchSize), o.BatchSize, "The batch size must be positive.");
        if (!(o.LearningRate > 0) || double.IsInfinity(o.LearningRate)) throw new ArgumentOutOfRangeException(nameof(Options.LearningRate), o.LearningRate, "The learning rate must be positive and finite.");
        if (!(o.FinalLearningRateFraction > 0 && o.FinalLearningRateFraction <= 1)) throw new ArgumentOutOfRangeException(nameof(Options.FinalLearningRateFraction), o.FinalLearningRateFraction, "The final learning-rate fraction must be in (0, 1].");
        if (o.MaxKnots < 2) throw new ArgumentOutOfRangeException(nameof(Options.MaxKnots), o.MaxKnots, "At least 2 knots are needed.");
        if (o.BlockRows <= 0) throw new ArgumentOutOfRangeException(nameof(Options.BlockRows), o.BlockRows, "The block size must be positive.");
        if (o.ReportEvery <= 0) throw new ArgumentOutOfRangeException(nameof(Options.ReportEvery), o.ReportEvery, "ReportEvery must be positive.");
        ArgumentException.ThrowIfNullOrWhiteSpace(o.LogLikelihoodColumnName, nameof(Options.LogLikelihoodColumnName));
        var duplicate = o.ContextColumns.Concat(o.Columns ?? Array.Empty<string>()).GroupBy(c => c).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"Column '{duplicate.Key}' is listed twice (a column is either modelled or context, once).", nameof(Options.Columns));
    }

    /// <summary>Reads the data once, fits the encodings and trains the flow.</summary>
    public TabularFlowTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        NativeRuntime.EnsureLoaded();
        var context = options.ContextColumns.ToArray();
        var modelled = (options.Columns ?? input.Schema.Where(c => !c.IsHidden && !context.Contains(c.Name)).Select(c => c.Name)).ToArray();
        if (modelled.Length == 0) throw new ArgumentException("There is no column to model: the data have only context columns.", nameof(input));
        foreach (var name in options.ColumnOptions.Keys)
            if (!modelled.Contains(name) && !context.Contains(name))
                throw new ArgumentException($"ColumnOptions names column '{name}', which is neither modelled nor context.", nameof(Options.ColumnOptions));
        var missingContext = context.FirstOrDefault(c => input.Schema.GetColumnOrNull(c) is null);
        if (missingContext is not null)
            throw new ArgumentException($"The data have no column '{missingContext}'. Columns: {string.Join(", ", input.Schema.Select(c => c.Name))}.", nameof(Options.ContextColumns));
        // One pass over the data for the modelled and the context columns.
        var columns = TableColumn.Read(input, modelled.Concat(context).ToArray(), nameof(input));
        var modelledColumns = columns[..modelled.Length];
        var contextColumns = columns[modelled.Length..];
        int rows = modelledColumns[0].Count;
        if (rows < 2) throw new ArgumentException($"The data have {rows} row(s); a table flow needs at least 2.", nameof(input));
        int seed = options.Seed ?? (int)(env.Register(nameof(TabularFlowEstimator)).Rand.NextInt64() & int.MaxValue);

        TabularColumnOptions? Override(string name) => options.ColumnOptions.TryGetValue(name, out var o) ? o : null;
        var encodings = modelledColumns.Select((c, j) => TableCodec.FitColumn(c, Override(c.Name), options.MaxKnots, options.RespectBounds, seed + 7919 * j)).ToArray();
        var contextEncodings = contextColumns.Select((c, j) => TableCodec.FitColumn(c, Override(c.Name), options.MaxKnots, options.RespectBounds, seed - 7919 * (j + 1))).ToArray();
        var codec = new TableCodec(encodings, contextEncodings);
        foreach (var c in modelledColumns.Concat(contextColumns))
            if (c.KeyNames is not null) codec.KeyNames[c.Name] = c.KeyNames;

        var (lo, hi, _) = codec.Encode(modelledColumns);
        var flow = new ConditionalFlowDistribution(codec.Dimension, codec.ContextWidth, options.Flow, seed);
        var trainer = new TrainerOptions
        {
            Iterations = options.Iterations,
            BatchSize = options.BatchSize,
            LearningRate = options.LearningRate,
            LearningRateDecay = Math.Pow(options.FinalLearningRateFraction, 1.0 / options.Iterations),
            Device = options.Device,
            Threads = options.Threads,
            ReportEvery = options.ReportEvery,
            Seed = seed,
        };
        var device = DeviceSelector.Resolve(options.Device);
        FitResult result;
        using (var data = torch.NewDisposeScope())
        {
            var loTensor = torch.tensor(lo, new long[] { rows, codec.Dimension }, ScalarType.Float64).to(device);
            var widthTensor = torch.tensor(hi, new long[] { rows, codec.Dimension }, ScalarType.Float64).to(device).sub_(loTensor);
            var contextTensor = codec.ContextTensor(contextColumns, trainer.DType, device);
            var generator = new Generator((ulong)(seed + 1), device);
            result = MaximumLikelihoodTrainer.Fit(flow, () =>
            {
                // Rows drawn with replacement and dequantized afresh: u uniform inside each cell's interval.
                var index = torch.randint(rows, new long[] { options.BatchSize }, generator: generator, device: device);
                var u = loTensor.index_select(0, index).addcmul(widthTensor.index_select(0, index),
                    torch.rand(options.BatchSize, codec.Dimension, generator: generator, dtype: ScalarType.Float64, device: device), S(1));
                return (TableCodec.NormalScores(u).to(trainer.DType), contextTensor?.index_select(0, index));
            }, trainer, options.Progress);
        }
        var contextTable = ContextTable.Of(contextColumns);
        return new TabularFlowTransformer(env, codec, flow, contextTable, modelled.Concat(context).OrderBy(n => input.Schema[n].Index).ToArray(),
            seed, options.BlockRows, options.LogLikelihoodColumnName) { TrainingResult = result };
    }

    /// <summary>The input's columns plus the log-likelihood column; every modelled and context column must be present.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        foreach (var name in (options.Columns ?? Array.Empty<string>()).Concat(options.ContextColumns))
            if (!inputSchema.TryFindColumn(name, out _))
                throw new ArgumentOutOfRangeException(nameof(inputSchema), $"Column '{name}' was not found in the input schema.");
        var columns = inputSchema.ToDictionary(c => c.Name);
        columns[options.LogLikelihoodColumnName] = new SchemaShape.Column(options.LogLikelihoodColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false);
        return new SchemaShape(columns.Values);
    }
}
