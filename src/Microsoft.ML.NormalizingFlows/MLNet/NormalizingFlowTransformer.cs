using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Diagnostics;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.MLNet;
using Microsoft.ML.NormalizingFlows.Persistence;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;

[assembly: LoadableClass(typeof(NormalizingFlowTransformer), null, typeof(SignatureLoadModel),
    "Normalizing Flow Transformer", NormalizingFlowTransformer.LoaderSignature)]

namespace Microsoft.ML.NormalizingFlows.MLNet;

/// <summary>How a flow transformer was fitted.</summary>
public enum FlowFitMode
{
    /// <summary>Reverse KL against a target log density (the columns include LogP and LogWeight).</summary>
    VariationalInference = 0,
    /// <summary>Maximum likelihood on a vector column of data.</summary>
    DensityEstimation = 1,
}

/// <summary>
/// A fitted normalizing flow as an ML.NET transformer.
/// <para>
/// Variational mode: <see cref="Transform"/> appends, lazily and in blocks, one independent draw z ~ q per input
/// row: <c>Sample</c> (vector of Single, size d), <c>LogQ</c> = log q(z), <c>LogP</c> = log p̃(z),
/// <c>LogWeight</c> = log p̃(z) − log q(z) (importance log-weights) and, when asked for, <c>Weight</c> (PSIS-smoothed
/// weights normalized within the block to average 1). The input rows' values are not read: rows only say how many
/// draws to make and give each draw its identity. A row's draw depends only on the model, <see cref="Seed"/> and
/// the row's <see cref="DataViewRowId"/>: rows are grouped in blocks of <see cref="BlockSize"/> ids (or of the
/// input's row count when it is smaller), and each block's noise comes from a generator seeded by (seed, block),
/// so cursor order and parallel cursors do not change it.
/// </para>
/// <para>
/// Density-estimation mode: <see cref="Transform"/> scores the data, appending <c>LogQ</c> = log q(x) of the fitted
/// column (a pipeline component, e.g. for anomaly scores); <see cref="Generate"/> makes synthetic rows.
/// </para>
/// <para>
/// Saved by <c>mlContext.Model.Save</c> with its weights inside the zip. A target's log density is code and
/// is not saved: a gallery target (<see cref="TargetGallery"/>) is stored by name and re-bound on load; any
/// other target must be re-bound with <see cref="BindTarget(Target)"/>. Until then LogP and LogWeight are NaN
/// (the columns stay in the schema so that downstream transforms keep working).
/// </para>
/// </summary>
public sealed class NormalizingFlowTransformer : ITransformer
{
    internal const string LoaderSignature = "NormalizingFlowXf";
    internal const string FlowStreamName = "Flow.nflow";
    internal const string FitReportStreamName = "FitReport.json";
    // 0x00010001: first format. 0x00010002: adds the weight column name and the Sample slot names.
    private const uint VersionCurrent = 0x00010002;
    private const uint VersionFirst = 0x00010001;

    /// <summary>Largest block in values (rows × dimension): 2^26, 256 MB of float32 per intermediate.</summary>
    public const long MaxBlockElements = 1L << 26;

    private readonly IHost host;
    private volatile Target? target;

    internal NormalizingFlowTransformer(IHostEnvironment env, FlowDistribution flow, FlowFitMode mode, FlowColumnNames names,
        long seed, int blockSize, Target? target, string? galleryTargetName, string? inputColumnName,
        IReadOnlyList<string>? slotNames = null, FitReportSummary? fitReport = null)
    {
        host = env.Register(nameof(NormalizingFlowTransformer));
        Flow = flow ?? throw new ArgumentNullException(nameof(flow));
        Flow.eval(); // inference only: no data-dependent initialization or other training-mode behaviour while transforming
        Mode = mode;
        Names = names;
        Seed = seed;
        CheckBlockSize(blockSize, flow.Dimension, nameof(blockSize));
        BlockSize = blockSize;
        GalleryTargetName = galleryTargetName;
        InputColumnName = inputColumnName;
        if (slotNames is not null && slotNames.Count != flow.Dimension)
            throw new ArgumentException($"{slotNames.Count} slot names were given for a flow of dimension {flow.Dimension}.", nameof(slotNames));
        SlotNames = slotNames?.ToArray();
        FitReport = fitReport;
        if (target is not null) BindTarget(target);
        SampleType = new VectorDataViewType(NumberDataViewType.Single, flow.Dimension);
    }

    /// <summary>Refuses a block size whose tensors could not be allocated (rows × dimension above <see cref="MaxBlockElements"/>).</summary>
    internal static void CheckBlockSize(int blockSize, int dimension, string argumentName)
    {
        if (blockSize <= 0) throw new ArgumentOutOfRangeException(argumentName, blockSize, "The block size must be positive.");
        if ((long)blockSize * dimension > MaxBlockElements)
            throw new ArgumentOutOfRangeException(argumentName, blockSize,
                $"A block of {blockSize:N0} rows × dimension {dimension} = {(long)blockSize * dimension:N0} values exceeds {MaxBlockElements:N0}; use a smaller block size.");
    }

    /// <summary>
    /// Wraps an already trained flow (for example one fitted with <c>VariationalTrainer</c>) as a transformer.
    /// With a target the columns include LogP and LogWeight (variational mode); without, only Sample and LogQ.
    /// </summary>
    public NormalizingFlowTransformer(MLContext mlContext, FlowDistribution flow, Target? target = null, long seed = 0,
        string sampleColumnName = "Sample", string logQColumnName = "LogQ", string logPColumnName = "LogP", string logWeightColumnName = "LogWeight",
        int blockSize = 1024, string? weightColumnName = null)
        : this(mlContext ?? throw new ArgumentNullException(nameof(mlContext)), flow,
              target is null ? FlowFitMode.DensityEstimation : FlowFitMode.VariationalInference,
              FlowColumnNames.Create(target is not null, sampleColumnName, logQColumnName, logPColumnName, logWeightColumnName, weightColumnName),
              seed, blockSize, target, GalleryName(target), null, target?.CoordinateNames)
    {
    }

    /// <summary>The fitted flow q (used without gradients; do not train it further while transforming).</summary>
    public FlowDistribution Flow { get; }
    public FlowFitMode Mode { get; }
    /// <summary>d, the size of the Sample vector.</summary>
    public int Dimension => Flow.Dimension;
    public FlowColumnNames Names { get; }
    /// <summary>The base seed of the draws.</summary>
    public long Seed { get; }
    /// <summary>Rows per computed block (also the granularity of the per-block seeds).</summary>
    public int BlockSize { get; }
    /// <summary>The target bound for LogP/LogWeight (variational mode), or null.</summary>
    public Target? Target => target;
    /// <summary>The gallery name of the target, stored in saved models and re-bound on load; null for user targets.</summary>
    public string? GalleryTargetName { get; private set; }
    /// <summary>Density estimation: the column the flow was fitted to.</summary>
    public string? InputColumnName { get; }
    /// <summary>What the fit did (null for loaded models).</summary>
    public Training.FitResult? TrainingResult { get; internal set; }
    /// <summary>Variational mode: whether the fit can be trusted (PSIS k̂, ESS, verdict and reasons), made after fitting and kept in saved models; null when not made.</summary>
    public FitReportSummary? FitReport { get; }
    /// <summary>Names of the Sample vector's coordinates (the input column's slot names in density estimation), or null.</summary>
    public IReadOnlyList<string>? SlotNames { get; }
    internal VectorDataViewType SampleType { get; }

    private long blocksComputed;
    /// <summary>Blocks of draws computed so far (laziness checks).</summary>
    internal long BlocksComputed => Interlocked.Read(ref blocksComputed);

    /// <summary>
    /// Binds (or re-binds) the target whose log density fills LogP and LogWeight. Needed after loading a
    /// model that was fitted to a user target; gallery targets are re-bound automatically.
    /// </summary>
    public void BindTarget(Target target)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (Mode != FlowFitMode.VariationalInference)
            throw new InvalidOperationException("This flow was fitted by density estimation; it has no LogP/LogWeight columns to fill.");
        if (target.Dimension != Dimension)
            throw new ArgumentException($"Target '{target.Name}' has dimension {target.Dimension} but the flow has dimension {Dimension}.", nameof(target));
        this.target = target;
        GalleryTargetName = GalleryName(target);
    }

    /// <summary>Binds the target in every flow transformer inside a model (a chain, possibly nested). Returns how many were bound.</summary>
    public static int BindTarget(ITransformer model, Target target)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(target);
        int count = 0;
        foreach (var flow in FindAll(model))
        {
            if (flow.Mode != FlowFitMode.VariationalInference) continue;
            flow.BindTarget(target);
            count++;
        }
        return count;
    }

    /// <summary>The flow transformers inside a model (itself, or the members of chains, recursively).</summary>
    public static IEnumerable<NormalizingFlowTransformer> FindAll(ITransformer model)
    {
        if (model is NormalizingFlowTransformer flow) { yield return flow; yield break; }
        if (model is IEnumerable<ITransformer> chain)
            foreach (var inner in chain)
                foreach (var found in FindAll(inner))
                    yield return found;
    }

    internal static string? GalleryName(Target? target) =>
        target is EnergyTarget energy && TargetGallery.Names.Contains(energy.Name, StringComparer.OrdinalIgnoreCase) ? energy.Name : null;

    public bool IsRowToRowMapper => true;

    /// <summary>Variational mode: input + the draw columns. Density estimation: input + LogQ of the fitted column.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        if (Mode == FlowFitMode.DensityEstimation)
        {
            FlowColumnChecks.CheckVectorColumn(inputSchema, InputColumnName!, Dimension, nameof(inputSchema));
            return ScoreSchemas.Append(inputSchema, Names.LogQ);
        }
        return SampleSchema(inputSchema);
    }

    /// <summary>The input's columns plus the draw columns (what <see cref="Generate"/> and variational Transform produce).</summary>
    internal DataViewSchema SampleSchema(DataViewSchema inputSchema)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        if (SlotNames is null) builder.AddColumn(Names.Sample, SampleType);
        else
        {
            var annotations = new DataViewSchema.Annotations.Builder();
            var names = SlotNames.Select(n => n.AsMemory()).ToArray();
            annotations.AddSlotNames(Dimension, (ref VBuffer<ReadOnlyMemory<char>> value) => value = new VBuffer<ReadOnlyMemory<char>>(names.Length, names));
            builder.AddColumn(Names.Sample, SampleType, annotations.ToAnnotations());
        }
        builder.AddColumn(Names.LogQ, NumberDataViewType.Single);
        if (Names.LogP is not null) builder.AddColumn(Names.LogP, NumberDataViewType.Single);
        if (Names.LogWeight is not null) builder.AddColumn(Names.LogWeight, NumberDataViewType.Single);
        if (Names.Weight is not null) builder.AddColumn(Names.Weight, NumberDataViewType.Single);
        return builder.ToSchema();
    }

    /// <summary>
    /// Variational mode: one draw per input row (the draw columns appended). Density estimation: log q of each row's
    /// fitted column (<see cref="InputColumnName"/>), appended as LogQ; use <see cref="Generate"/> for synthetic rows.
    /// </summary>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Mode == FlowFitMode.DensityEstimation ? ScoreLogQ(input, InputColumnName!, Names.LogQ) : new FlowSampleDataView(this, input);
    }

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        if (Mode == FlowFitMode.DensityEstimation)
        {
            var column = FlowColumnChecks.CheckVectorColumn(inputSchema, InputColumnName!, Dimension, nameof(inputSchema));
            return new ScoreRowMapper(new VectorLogQScorer(this, column), inputSchema, Names.LogQ);
        }
        return new FlowRowMapper(this, inputSchema);
    }

    /// <summary>Draws <paramref name="rowCount"/> rows directly (synthetic data): row i has id i, so the same model, seed and row count give the same rows.</summary>
    public IDataView Generate(long rowCount)
    {
        if (rowCount < 0) throw new ArgumentOutOfRangeException(nameof(rowCount), rowCount, "The number of rows cannot be negative.");
        return new FlowSampleDataView(this, new RowsDataView(rowCount));
    }

    /// <summary>
    /// Appends log q(x) of an existing known-size vector column x (size d, Single) to <paramref name="input"/>,
    /// lazily and in blocks: the density of data under the fitted flow (density-estimation scoring).
    /// Needs a flow with an inverse.
    /// </summary>
    public IDataView ScoreLogQ(IDataView input, string inputColumnName, string outputColumnName = "LogQ")
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentException.ThrowIfNullOrWhiteSpace(inputColumnName);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputColumnName);
        if (!Flow.CanEvaluateLogProb)
            throw new NotSupportedException($"The flow ({Flow.Transform?.GetType().Name}) has no inverse, so log q cannot be evaluated at given points.");
        var column = FlowColumnChecks.CheckVectorColumn(input.Schema, inputColumnName, Dimension, nameof(inputColumnName));
        return new BlockScoreDataView(new VectorLogQScorer(this, column), input, outputColumnName);
    }

    // ---- block computation -------------------------------------------------------------------------

    internal sealed class Block(ulong high, ulong index, float[] sample, float[] logQ, float[]? logP, float[]? logWeight, float[]? weight)
    {
        public readonly ulong High = high, Index = index;
        public readonly float[] Sample = sample, LogQ = logQ;
        public readonly float[]? LogP = logP, LogWeight = logWeight, Weight = weight;
    }

    /// <summary>The rows per block for an input of <paramref name="rowCount"/> rows: <see cref="BlockSize"/>, clipped to a smaller known count.</summary>
    internal int BlockRowsFor(long? rowCount) => rowCount is long n && n < BlockSize ? (int)Math.Max(1, n) : BlockSize;

    /// <summary>Computes the draws of block (high, index) of <paramref name="rows"/> rows: ids high:index·rows … high:(index+1)·rows − 1.</summary>
    internal Block ComputeBlock(ulong high, ulong index, int rows)
    {
        Interlocked.Increment(ref blocksComputed);
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var (dtype, device) = Flow.Placement;
        var generator = new Generator(BlockSeed(Seed, high, index), device);
        var noise = torch.randn(rows, Dimension, dtype: dtype, device: device, generator: generator);
        var (z, logQ) = Flow.SampleFromNoise(noise);
        var bound = target;
        float[]? logP = null, logWeight = null, weight = null;
        if (Mode == FlowFitMode.VariationalInference)
        {
            if (bound is null)
            {
                logP = new float[rows];
                Array.Fill(logP, float.NaN);
                logWeight = logP;
                if (Names.Weight is not null) weight = logP;
            }
            else
            {
                var lp = bound.Evaluate(z);
                logP = ToArray(lp);
                var lw = lp.to(ScalarType.Float64) - logQ.to(ScalarType.Float64);
                logWeight = ToArray(lw);
                if (Names.Weight is not null) weight = BlockWeights(lw.cpu().data<double>().ToArray());
            }
        }
        return new Block(high, index, ToArray(z), ToArray(logQ), logP, logWeight, weight);
    }

    /// <summary>PSIS-smoothed weights of one block's log ratios, normalized to average 1 (0 where a ratio is not finite).</summary>
    private static float[] BlockWeights(double[] logRatios)
    {
        if (logRatios.Length < 2) return logRatios.Select(r => double.IsFinite(r) ? 1f : 0f).ToArray();
        var smoothed = ParetoSmoothing.Smooth(logRatios).Weights;
        return smoothed.Select(w => (float)(w * logRatios.Length)).ToArray();
    }

    internal float[] LogProbOf(float[] points, int count)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var (dtype, device) = Flow.Placement;
        var x = torch.tensor(points, new long[] { count, Dimension }).to(dtype).to(device);
        return ToArray(Flow.LogProb(x));
    }

    // log q of a known-size vector column, a block of rows per tensor pass.
    private sealed class VectorLogQScorer(NormalizingFlowTransformer model, DataViewSchema.Column column) : IRowScorer
    {
        public IReadOnlyList<DataViewSchema.Column> SourceColumns { get; } = new[] { column };
        public int BlockRows => model.BlockSize;
        public RowScoreReader CreateReader(DataViewRow row) => new Reader(model, row.GetGetter<VBuffer<float>>(column));

        private sealed class Reader(NormalizingFlowTransformer model, ValueGetter<VBuffer<float>> values) : RowScoreReader
        {
            private VBuffer<float> scratch;
            private float[] points = Array.Empty<float>();

            public override void Read(int slot)
            {
                int d = model.Dimension;
                if (points.Length < (slot + 1) * d) Array.Resize(ref points, Math.Max((slot + 1) * d, points.Length * 2));
                values(ref scratch);
                scratch.CopyTo(points, slot * d);
            }

            public override float[] Score(int count) => model.LogProbOf(points.AsSpan(0, count * model.Dimension).ToArray(), count);
        }
    }

    private static float[] ToArray(Tensor t) => t.detach().to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();

    internal static ulong BlockSeed(long seed, ulong high, ulong index)
    {
        ulong h = SplitMix((ulong)seed ^ 0x6A09E667F3BCC908UL);
        h = SplitMix(h ^ high);
        return SplitMix(h ^ index);
    }

    private static ulong SplitMix(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    // ---- persistence (ML.NET model zip) -----------------------------------------------------------

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "NRMFLOWX",
        verWrittenCur: VersionCurrent,
        verReadableCur: VersionCurrent,
        verWeCanReadBack: VersionFirst,
        loaderSignature: LoaderSignature,
        loaderAssemblyName: typeof(NormalizingFlowTransformer).Assembly.FullName);

    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ArgumentNullException.ThrowIfNull(ctx);
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        // int: mode; int: dimension; long: seed; int: block size;
        // strings: sample, logQ, logP?, logWeight?, gallery target?, input column?;
        // (since 0x00010002) string: weight?; int: slot-name count (0 = none) and that many strings;
        // then the flow as a binary stream, and the fit report (JSON) as a binary stream when there is one.
        ctx.Writer.Write((int)Mode);
        ctx.Writer.Write(Dimension);
        ctx.Writer.Write(Seed);
        ctx.Writer.Write(BlockSize);
        ctx.SaveNonEmptyString(Names.Sample);
        ctx.SaveNonEmptyString(Names.LogQ);
        ctx.SaveStringOrNull(Names.LogP);
        ctx.SaveStringOrNull(Names.LogWeight);
        ctx.SaveStringOrNull(GalleryTargetName);
        ctx.SaveStringOrNull(InputColumnName);
        ctx.SaveStringOrNull(Names.Weight);
        ctx.Writer.Write(SlotNames?.Count ?? 0);
        foreach (var name in SlotNames ?? Array.Empty<string>()) ctx.SaveString(name);
        ctx.SaveBinaryStream(FlowStreamName, w => FlowSerializer.Save(Flow, w.BaseStream));
        if (FitReport is not null) ctx.SaveBinaryStream(FitReportStreamName, w => w.Write(FitReport.ToJson()));
    }

    // Called by ML.NET's component catalog (SignatureLoadModel) when a zip is loaded.
    private static NormalizingFlowTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(ctx);
        ctx.CheckAtModel(GetVersionInfo());
        var mode = (FlowFitMode)ctx.Reader.ReadInt32();
        if (!Enum.IsDefined(mode)) throw new InvalidDataException($"Corrupt normalizing-flow model: unknown mode {(int)mode}.");
        int dimension = ctx.Reader.ReadInt32();
        long seed = ctx.Reader.ReadInt64();
        int blockSize = ctx.Reader.ReadInt32();
        if (dimension <= 0 || blockSize <= 0) throw new InvalidDataException($"Corrupt normalizing-flow model: dimension {dimension}, block size {blockSize}.");
        var names = new FlowColumnNames(ctx.LoadNonEmptyString(), ctx.LoadNonEmptyString(), ctx.LoadStringOrNull(), ctx.LoadStringOrNull());
        string? gallery = ctx.LoadStringOrNull();
        string? inputColumn = ctx.LoadStringOrNull();
        string[]? slotNames = null;
        if (ctx.Header.ModelVerWritten >= VersionCurrent)
        {
            names = names with { Weight = ctx.LoadStringOrNull() };
            int slots = ctx.Reader.ReadInt32();
            if (slots != 0 && slots != dimension) throw new InvalidDataException($"Corrupt normalizing-flow model: {slots} slot names for dimension {dimension}.");
            if (slots > 0) slotNames = Enumerable.Range(0, slots).Select(_ => ctx.LoadString()).ToArray();
        }
        FitReportSummary? report = null;
        ctx.TryLoadBinaryStream(FitReportStreamName, r => report = FitReportSummary.FromJson(r.ReadString(), "Corrupt normalizing-flow model"));
        FlowDistribution? flow = null;
        if (!ctx.TryLoadBinaryStream(FlowStreamName, r => flow = FlowSerializer.Load(r.BaseStream)) || flow is null)
            throw new InvalidDataException($"Corrupt normalizing-flow model: the entry '{FlowStreamName}' with the weights is missing.");
        if (flow.Dimension != dimension)
            throw new InvalidDataException($"Corrupt normalizing-flow model: the flow has dimension {flow.Dimension} but the header says {dimension}.");
        Target? target = null;
        if (gallery is not null && mode == FlowFitMode.VariationalInference)
        {
            try { target = TargetGallery.Create(gallery); }
            catch (ArgumentException) { /* a gallery this version does not know: leave unbound (NaN) */ }
        }
        return new NormalizingFlowTransformer(env, flow, mode, names, seed, blockSize, target, gallery, inputColumn, slotNames, report);
    }
}

/// <summary>The names of the columns a flow transformer appends (LogP and LogWeight only in variational mode).</summary>
public sealed record FlowColumnNames(string Sample, string LogQ, string? LogP, string? LogWeight, string? Weight = null)
{
    internal static FlowColumnNames Create(bool variational, string sample, string logQ, string? logP, string? logWeight, string? weight = null)
    {
        var names = new List<(string Value, string Arg)> { (Check(sample, "sampleColumnName"), "sampleColumnName"), (Check(logQ, "logQColumnName"), "logQColumnName") };
        if (variational)
        {
            names.Add((Check(logP, "logPColumnName"), "logPColumnName"));
            names.Add((Check(logWeight, "logWeightColumnName"), "logWeightColumnName"));
            if (weight is not null) names.Add((Check(weight, "weightColumnName"), "weightColumnName"));
        }
        var duplicate = names.GroupBy(n => n.Value).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ArgumentException($"Output column name '{duplicate.Key}' is used twice ({string.Join(", ", duplicate.Select(d => d.Arg))}).", duplicate.Last().Arg);
        return variational ? new(sample, logQ, logP, logWeight, weight) : new(sample, logQ, null, null);
    }

    private static string Check(string? name, string argument) =>
        string.IsNullOrWhiteSpace(name) ? throw new ArgumentException("An output column name cannot be empty.", argument) : name;
}
