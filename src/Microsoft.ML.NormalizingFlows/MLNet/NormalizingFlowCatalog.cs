using Microsoft.ML.Data;
using Microsoft.ML.NormalizingFlows.MLNet;
using Microsoft.ML.NormalizingFlows.Targets;

namespace Microsoft.ML;

/// <summary>
/// Normalizing flows in ML.NET pipelines: <c>mlContext.Transforms.NormalizingFlow(target)</c> (variational
/// inference: posterior samples with log q, log p̃ and importance log-weights) and
/// <c>mlContext.Transforms.NormalizingFlowDensity()</c> (density estimation on a vector column: synthetic
/// rows and log q of data).
/// </summary>
public static class NormalizingFlowCatalog
{
    /// <summary>
    /// Fits a flow q to <paramref name="target"/> by variational inference (reverse KL). Fit's input data is used
    /// only for its schema and may be empty; Transform appends one draw from q per input row
    /// (use <see cref="NormalizingFlowTransformer.Generate"/> for N rows without input).
    /// </summary>
    /// <param name="catalog">mlContext.Transforms.</param>
    /// <param name="target">The unnormalized log density to approximate.</param>
    /// <param name="sampleColumnName">Output: the draw z, a vector of Single of size d.</param>
    /// <param name="logQColumnName">Output: log q(z).</param>
    /// <param name="logPColumnName">Output: log p̃(z), the target's unnormalized log density.</param>
    /// <param name="logWeightColumnName">Output: log p̃(z) − log q(z).</param>
    /// <param name="flow">A flow preset (planar, radial, mean-field, full-rank, …).</param>
    /// <param name="layers">Layers K.</param>
    /// <param name="iterations">Optimizer steps.</param>
    /// <param name="seed">Seed of the fit and of the draws (null: from the MLContext).</param>
    public static NormalizingFlowEstimator NormalizingFlow(this TransformsCatalog catalog, Target target,
        string sampleColumnName = "Sample", string logQColumnName = "LogQ", string logPColumnName = "LogP", string logWeightColumnName = "LogWeight",
        string flow = "planar", int layers = 32, int iterations = 5_000, long? seed = null)
    {
        ArgumentNullException.ThrowIfNull(target);
        return catalog.NormalizingFlow(target, new NormalizingFlowEstimator.Options
        {
            SampleColumnName = sampleColumnName,
            LogQColumnName = logQColumnName,
            LogPColumnName = logPColumnName,
            LogWeightColumnName = logWeightColumnName,
            Flow = flow,
            Layers = layers,
            Iterations = iterations,
            Seed = seed,
        });
    }

    /// <summary>
    /// Variational inference for a <see cref="Microsoft.ML.NormalizingFlows.Modeling.BayesianModel"/>: the flow works on the model's unconstrained
    /// coordinates (the bijectors' log |det J| included), and the Sample column's slots are named after them
    /// (mu, unconstrained(tau), …). For draws by name on the constrained scale use <c>model.Fit()</c> and its
    /// <c>Draws(n).ToDataView(mlContext)</c>.
    /// </summary>
    public static NormalizingFlowEstimator NormalizingFlow(this TransformsCatalog catalog, Microsoft.ML.NormalizingFlows.Modeling.BayesianModel model, NormalizingFlowEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(model);
        return catalog.NormalizingFlow(model.AsTarget(), options);
    }

    /// <summary>Variational inference with all settings (see <see cref="NormalizingFlowEstimator.Options"/>).</summary>
    public static NormalizingFlowEstimator NormalizingFlow(this TransformsCatalog catalog, Target target, NormalizingFlowEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(options);
        return new NormalizingFlowEstimator(CatalogUtils.GetEnvironment(catalog), target, options);
    }

    /// <summary>
    /// Fits a flow to the rows of a known-size vector-of-Single column by maximum likelihood (density
    /// estimation), streaming minibatches through cursors. The flow needs an inverse with gradients
    /// (radial, mean-field, full-rank, or a coupling/autoregressive preset; planar is refused at Fit).
    /// Transform appends one synthetic draw per row; <see cref="NormalizingFlowTransformer.ScoreLogQ"/> gives log q of data.
    /// </summary>
    public static NormalizingFlowEstimator NormalizingFlowDensity(this TransformsCatalog catalog,
        string sampleColumnName = "Sample", string logQColumnName = "LogQ", string inputColumnName = "Features",
        string flow = "radial", int layers = 16, int iterations = 5_000, long? seed = null)
        => catalog.NormalizingFlowDensity(new NormalizingFlowEstimator.Options
        {
            SampleColumnName = sampleColumnName,
            LogQColumnName = logQColumnName,
            InputColumnName = inputColumnName,
            Flow = flow,
            Layers = layers,
            Iterations = iterations,
            Seed = seed,
        });

    /// <summary>
    /// A view of <paramref name="rowCount"/> rows with row ids 0 … N − 1 and one Int64 column, RowIndex: the input that asks a
    /// flow transformer for N draws (e.g. <c>model.Transform(mlContext.Data.CreateEmptyRows(1000))</c>).
    /// </summary>
    public static IDataView CreateEmptyRows(this DataOperationsCatalog catalog, long rowCount)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        if (rowCount < 0) throw new ArgumentOutOfRangeException(nameof(rowCount), rowCount, "The number of rows cannot be negative.");
        return new RowsDataView(rowCount);
    }

    /// <summary>
    /// <c>mlContext.Model.Load</c>, with the loaders' own exceptions rethrown as they are. ML.NET invokes every
    /// component's loader by reflection, so a corrupt or mismatched flow entry surfaces from <c>Model.Load</c> as a
    /// <see cref="System.Reflection.TargetInvocationException"/> (nested once per chain level) around our
    /// <see cref="InvalidDataException"/>; this unwraps it, keeping the original stack trace, so
    /// <c>catch (InvalidDataException)</c> works.
    /// </summary>
    public static ITransformer LoadUnwrapped(this ModelOperationsCatalog catalog, Stream stream, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(stream);
        try
        {
            return catalog.Load(stream, out inputSchema);
        }
        catch (System.Reflection.TargetInvocationException e)
        {
            Exception inner = e;
            while (inner is System.Reflection.TargetInvocationException { InnerException: { } next }) inner = next;
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(inner).Throw();
            throw; // not reached
        }
    }

    /// <inheritdoc cref="LoadUnwrapped(ModelOperationsCatalog, Stream, out DataViewSchema)"/>
    public static ITransformer LoadUnwrapped(this ModelOperationsCatalog catalog, string path, out DataViewSchema inputSchema)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        using var stream = File.OpenRead(path);
        return catalog.LoadUnwrapped(stream, out inputSchema);
    }

    /// <summary>Density estimation with all settings (see <see cref="NormalizingFlowEstimator.Options"/>).</summary>
    public static NormalizingFlowEstimator NormalizingFlowDensity(this TransformsCatalog catalog, NormalizingFlowEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new NormalizingFlowEstimator(CatalogUtils.GetEnvironment(catalog), null, options);
    }

    /// <summary>
    /// Synthetic data and row scoring for a table: fits a flow to the rows of the data's columns (numeric, integer,
    /// Boolean, text and key columns, with missing values), optionally conditioned on context columns. The fitted
    /// <see cref="Microsoft.ML.NormalizingFlows.Tabular.TabularFlowTransformer"/> generates typed rows (<c>Generate</c>) and scores rows' log-likelihood
    /// (<c>Transform</c>). See docs/synthetic-data.md.
    /// </summary>
    public static Microsoft.ML.NormalizingFlows.Tabular.TabularFlowEstimator TabularFlow(this TransformsCatalog catalog, Microsoft.ML.NormalizingFlows.Tabular.TabularFlowEstimator.Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new Microsoft.ML.NormalizingFlows.Tabular.TabularFlowEstimator(CatalogUtils.GetEnvironment(catalog), options);
    }
}
