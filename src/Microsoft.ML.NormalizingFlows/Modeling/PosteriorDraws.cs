using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.Diagnostics;
using Microsoft.ML.NormalizingFlows.Distributions;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling;

/// <summary>
/// S draws from a fitted q, by parameter name on the constrained scale, with their PSIS weights towards the
/// posterior: arrays per parameter or entry, an <see cref="IDataView"/> with one named column per parameter, a
/// summary table, and generated quantities (any function of the parameters and data, per draw).
/// </summary>
public sealed class PosteriorDraws
{
    private readonly BayesianModel model;
    private readonly ImportanceSample sample;
    private readonly Dictionary<string, double[]> valuesByParameter = new(StringComparer.Ordinal); // row-major [S, size]

    internal PosteriorDraws(BayesianModel model, ImportanceSample sample, int blockSize)
    {
        this.model = model;
        this.sample = sample;
        foreach (var p in model.Parameters) valuesByParameter[p.Name] = new double[sample.Count * p.ValueSize];
        using var noGrad = torch.no_grad();
        for (int start = 0; start < sample.Count; start += blockSize)
        {
            using var scope = torch.NewDisposeScope();
            int n = Math.Min(blockSize, sample.Count - start);
            var values = model.Constrain(Unconstrained(start, n));
            foreach (var p in model.Parameters)
                values[p.Name].reshape(n, -1).to(ScalarType.Float64).cpu().contiguous().data<double>().ToArray()
                    .CopyTo(valuesByParameter[p.Name], start * p.ValueSize);
        }
    }

    /// <summary>Draws S unconstrained points from q and evaluates the model at them (no gradients, in blocks).</summary>
    public static PosteriorDraws Draw(BayesianModel model, FlowDistribution q, int count = 10_000, long seed = 20_240_101, int blockSize = Training.Evaluation.DefaultBlockSize)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(q);
        if (q.Dimension != model.Dimension)
            throw new ArgumentException($"The flow has dimension {q.Dimension} but model '{model.Name}' has {model.Dimension} unconstrained coordinates.", nameof(q));
        return new PosteriorDraws(model, ImportanceSample.Draw(q, model.AsTarget(), count, seed, blockSize), blockSize);
    }

    public BayesianModel Model => model;
    public int Count => sample.Count;

    /// <summary>The draws' log p̃, log q, PSIS (k̂ and normalized weights).</summary>
    public ImportanceSample ImportanceSample => sample;

    /// <summary>PSIS-smoothed normalized weights, one per draw.</summary>
    public IReadOnlyList<double> Weights => sample.Psis.Weights;

    /// <summary>A parameter's draws, [S][entries] (row-major entries for matrices).</summary>
    public double[][] Parameter(string name)
    {
        var p = Find(name);
        var values = valuesByParameter[name];
        return Enumerable.Range(0, Count).Select(s => values.AsSpan(s * (int)p.ValueSize, (int)p.ValueSize).ToArray()).ToArray();
    }

    /// <summary>One entry's draws by its name: "tau", "theta[3]", "L[2,1]".</summary>
    public double[] this[string entryName]
    {
        get
        {
            foreach (var p in model.Parameters)
            {
                int index = p.EntryNames().TakeWhile(n => n != entryName).Count();
                if (index == p.ValueSize) continue;
                var values = valuesByParameter[p.Name];
                return Enumerable.Range(0, Count).Select(s => values[s * p.ValueSize + index]).ToArray();
            }
            throw new KeyNotFoundException($"No entry '{entryName}' in model '{model.Name}'. Entries: {string.Join(", ", model.Parameters.SelectMany(p => p.EntryNames()).Take(20))}….");
        }
    }

    /// <summary>The summary table: mean, sd, quantiles, MCSE and ESS per entry, raw and PSIS-reweighted.</summary>
    public PosteriorSummary Summary(FitVerdict? verdict = null) =>
        PosteriorSummary.From(model.Parameters.SelectMany(p => p.EntryNames().Select(n => (n, this[n]))).ToArray(), Weights, sample.Psis.ParetoK, verdict);

    /// <summary>
    /// A generated quantity or posterior-predictive statistic: <paramref name="quantity"/> sees the parameters (batch
    /// first) and the data, as a log density does, and returns [B] or [B, k]. Returns [S][k] (k = 1 for [B]).
    /// </summary>
    public double[][] Generate(Func<ModelContext, Tensor> quantity, int blockSize = Training.Evaluation.DefaultBlockSize)
    {
        ArgumentNullException.ThrowIfNull(quantity);
        var result = new List<double[]>(Count);
        using var noGrad = torch.no_grad();
        for (int start = 0; start < Count; start += blockSize)
        {
            using var scope = torch.NewDisposeScope();
            int n = Math.Min(blockSize, Count - start);
            var z = Unconstrained(start, n);
            var value = quantity(new ModelContext(model, model.Split(z).Values, z));
            if (value.dim() == 0 || value.shape[0] != n)
                throw new ArgumentException($"A generated quantity must return one row per draw ([B] or [B, k]); got [{string.Join(", ", value.shape)}] for B = {n}.", nameof(quantity));
            var rows = value.reshape(n, -1).to(ScalarType.Float64).cpu().contiguous();
            var flat = rows.data<double>().ToArray();
            int k = (int)rows.shape[1];
            for (int i = 0; i < n; i++) result.Add(flat.AsSpan(i * k, k).ToArray());
        }
        return result.ToArray();
    }

    /// <summary>
    /// The draws as an <see cref="IDataView"/>: a Double column per scalar parameter, a vector-of-Double column per
    /// vector or matrix parameter (slot names theta[1] …), and a Weight column (PSIS weights × S, averaging 1).
    /// </summary>
    public IDataView ToDataView(MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        var builder = new DataViewSchema.Builder();
        foreach (var p in model.Parameters)
        {
            if (p.Shape.Length == 0) { builder.AddColumn(p.Name, NumberDataViewType.Double); continue; }
            var names = p.EntryNames().Select(n => n.AsMemory()).ToArray();
            var annotations = new DataViewSchema.Annotations.Builder();
            annotations.AddSlotNames(names.Length, (ref VBuffer<ReadOnlyMemory<char>> v) => v = new VBuffer<ReadOnlyMemory<char>>(names.Length, names));
            builder.AddColumn(p.Name, new VectorDataViewType(NumberDataViewType.Double, names.Length), annotations.ToAnnotations());
        }
        builder.AddColumn("Weight", NumberDataViewType.Double);
        return new DrawsDataView(this, builder.ToSchema());
    }

    private ModelParameter Find(string name) => model.Parameters.FirstOrDefault(p => p.Name == name)
        ?? throw new KeyNotFoundException($"Model '{model.Name}' has no parameter '{name}'. Parameters: {string.Join(", ", model.Parameters.Select(p => p.Name))}.");

    private Tensor Unconstrained(int start, int n)
    {
        var rows = new double[n * model.Dimension];
        for (int i = 0; i < n; i++) sample.Point(start + i).CopyTo(rows, i * model.Dimension);
        return torch.tensor(rows, new long[] { n, model.Dimension }, ScalarType.Float64);
    }

    /// <summary>A read-only, in-memory view over the draws.</summary>
    private sealed class DrawsDataView(PosteriorDraws draws, DataViewSchema schema) : IDataView
    {
        public bool CanShuffle => false;
        public DataViewSchema Schema { get; } = schema;
        public long? GetRowCount() => draws.Count;
        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(draws, Schema);
        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) => new[] { GetRowCursor(columnsNeeded, rand) };

        private sealed class Cursor(PosteriorDraws draws, DataViewSchema schema) : DataViewRowCursor
        {
            private long position = -1;
            public override DataViewSchema Schema => schema;
            public override long Position => position;
            public override long Batch => 0;
            public override bool MoveNext() => position < draws.Count && ++position < draws.Count;
            public override ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)position, 0);
            public override bool IsColumnActive(DataViewSchema.Column column) => true;

            public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
            {
                Delegate getter;
                if (column.Index == schema.Count - 1)
                    getter = (ValueGetter<double>)((ref double v) => v = draws.Weights[(int)position] * draws.Count);
                else
                {
                    var p = draws.model.Parameters[column.Index];
                    var values = draws.valuesByParameter[p.Name];
                    int size = (int)p.ValueSize;
                    getter = p.Shape.Length == 0
                        ? (ValueGetter<double>)((ref double v) => v = values[position])
                        : (ValueGetter<VBuffer<double>>)((ref VBuffer<double> v) =>
                        {
                            var editor = VBufferEditor.Create(ref v, size);
                            values.AsSpan((int)position * size, size).CopyTo(editor.Values);
                            v = editor.Commit();
                        });
                }
                return getter as ValueGetter<TValue> ?? throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}; a getter of {typeof(TValue).Name} was requested.");
            }
        }
    }
}
