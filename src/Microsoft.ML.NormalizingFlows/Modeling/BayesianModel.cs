using Microsoft.ML;
using Microsoft.ML.NormalizingFlows.Modeling.Constraints;
using Microsoft.ML.NormalizingFlows.Targets;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling;

/// <summary>
/// A Bayesian model written in C#: parameters declared by name, shape and constraint; data bound by name; and a
/// log density over the constrained, named values. The bijectors to unconstrained space and their log |det J| are
/// the library's job (<see cref="AsTarget"/> adds them), as in Stan and NumPyro.
/// <code>
/// var model = new BayesianModel("eight_schools_noncentered")
///     .Parameter("theta_trans", shape: 8).Parameter("mu").Parameter("tau", Constraint.Positive)
///     .Data("y", y).Data("sigma", sigma)
///     .LogDensity(m =&gt; new Normal(0, 1).LogProb(m["theta_trans"]).sum(1) + …);
/// </code>
/// </summary>
public sealed partial class BayesianModel
{
    private readonly List<ModelParameter> parameters = new();
    private readonly Dictionary<string, CachedConstant> data = new(StringComparer.Ordinal);
    private Func<ModelContext, Tensor>? logDensity;
    private MinibatchSource? minibatches;

    public BayesianModel(string name)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("A model needs a name.", nameof(name));
        Name = name;
    }

    public string Name { get; }

    public IReadOnlyList<ModelParameter> Parameters => parameters;

    /// <summary>The number of unconstrained coordinates (the dimension a flow works in).</summary>
    public int Dimension => parameters.Sum(p => p.UnconstrainedSize);

    /// <summary>The names of the data bound so far.</summary>
    public IEnumerable<string> DataNames => data.Keys;

    /// <summary>Declares a parameter (real by default; a scalar when no shape is given).</summary>
    public BayesianModel Parameter(string name, Constraint? constraint = null, params long[] shape)
    {
        CheckNewName(name, nameof(name));
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Any(s => s <= 0)) throw new ArgumentException($"Parameter '{name}' has shape [{string.Join(", ", shape)}]; sizes must be positive.", nameof(shape));
        var c = constraint ?? Constraint.Real;
        try
        {
            parameters.Add(new ModelParameter(name, shape, c, Dimension));
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"Parameter '{name}': {e.Message}", nameof(constraint), e);
        }
        return this;
    }

    /// <summary>Declares a vector parameter of n entries.</summary>
    public BayesianModel Parameter(string name, int shape, Constraint? constraint = null) => Parameter(name, constraint, shape);

    /// <summary>Binds real data (row-major values and their shape; a vector when no shape is given). Converted once per dtype and device.</summary>
    public BayesianModel Data(string name, double[] values, params long[] shape)
    {
        ArgumentNullException.ThrowIfNull(values);
        CheckNewName(name, nameof(name));
        CheckShape(name, values.LongLength, shape);
        foreach (var (v, i) in values.Select((v, i) => (v, i)))
            if (!double.IsFinite(v)) throw new ArgumentException($"Data '{name}' has a non-finite value ({v}) at position {i}.", nameof(values));
        data.Add(name, new CachedConstant(values, shape));
        return this;
    }

    /// <summary>Binds real data given as float32.</summary>
    public BayesianModel Data(string name, float[] values, params long[] shape) =>
        Data(name, (values ?? throw new ArgumentNullException(nameof(values))).Select(v => (double)v).ToArray(), shape);

    /// <summary>Binds integer data (indices such as group ids, or counts): kept as int64; use <c>.to(dtype)</c> for arithmetic on counts.</summary>
    public BayesianModel Data(string name, long[] values, params long[] shape)
    {
        ArgumentNullException.ThrowIfNull(values);
        CheckNewName(name, nameof(name));
        CheckShape(name, values.LongLength, shape);
        data.Add(name, CachedConstant.From(torch.tensor(values).reshape(shape.Length > 0 ? shape : new[] { values.LongLength })));
        return this;
    }

    /// <summary>Binds integer data given as int32.</summary>
    public BayesianModel Data(string name, int[] values, params long[] shape) =>
        Data(name, (values ?? throw new ArgumentNullException(nameof(values))).Select(v => (long)v).ToArray(), shape);

    /// <summary>Binds a tensor (copied: floating values kept in float64, integers as int64).</summary>
    public BayesianModel Data(string name, Tensor values)
    {
        ArgumentNullException.ThrowIfNull(values);
        CheckNewName(name, nameof(name));
        if (values.is_floating_point() && !values.isfinite().all().item<bool>())
            throw new ArgumentException($"Data '{name}' has non-finite values.", nameof(values));
        data.Add(name, CachedConstant.From(values));
        return this;
    }

    /// <summary>
    /// Streams columns of a large <see cref="IDataView"/> in minibatches of <paramref name="batchSize"/> rows: every
    /// evaluation of the log density sees the next batch as <see cref="ModelContext.Minibatch"/> and should add
    /// <c>m.Minibatch.ScaledSum(perRowLogLikelihood)</c> (the batch sum × N/B, unbiased for the full sum).
    /// </summary>
    public BayesianModel Minibatch(MLContext mlContext, IDataView dataView, int batchSize, params string[] columns)
    {
        if (minibatches is not null) throw new InvalidOperationException($"Model '{Name}' already streams minibatches.");
        minibatches = new MinibatchSource(mlContext, dataView, batchSize, columns, seed: 1);
        return this;
    }

    /// <summary>The minibatch stream, when the model has one.</summary>
    public MinibatchSource? Minibatches => minibatches;

    /// <summary>The log density over constrained values: returns one value per point of the batch, [B].</summary>
    public BayesianModel LogDensity(Func<ModelContext, Tensor> logDensity)
    {
        this.logDensity = logDensity ?? throw new ArgumentNullException(nameof(logDensity));
        return this;
    }

    /// <summary>
    /// The model as a <see cref="Target"/> over its unconstrained coordinates: log p̃(z) = the user's log density at the
    /// constrained values plus every parameter's log |det J|. Fit it with any flow and trainer.
    /// </summary>
    public Target AsTarget()
    {
        if (logDensity is null) throw new InvalidOperationException($"Model '{Name}' has no log density: call LogDensity(...) first.");
        if (parameters.Count == 0) throw new InvalidOperationException($"Model '{Name}' has no parameters.");
        return new ModelTarget(this);
    }

    /// <summary>Unconstrained points [B, D] → each parameter's constrained values, batch first.</summary>
    public IReadOnlyDictionary<string, Tensor> Constrain(Tensor unconstrained) => Split(unconstrained).Values;

    /// <summary>Constrained values (batch first, by name) → unconstrained points [B, D].</summary>
    public Tensor Unconstrain(IReadOnlyDictionary<string, Tensor> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var parts = new List<Tensor>();
        foreach (var p in parameters)
        {
            if (!values.TryGetValue(p.Name, out var value)) throw new ArgumentException($"No values for parameter '{p.Name}'.", nameof(values));
            var shaped = p.Shape.Length == 0 ? value.reshape(value.shape[0], 1) : value;
            parts.Add(p.Bijector.Inverse(shaped));
        }
        return torch.cat(parts.ToArray(), 1);
    }

    internal (Dictionary<string, Tensor> Values, Tensor LogAbsDetJacobian) Split(Tensor unconstrained)
    {
        ArgumentNullException.ThrowIfNull(unconstrained);
        if (unconstrained.dim() != 2 || unconstrained.shape[1] != Dimension)
            throw new ArgumentException($"Model '{Name}' has {Dimension} unconstrained coordinates; got points of shape [{string.Join(", ", unconstrained.shape)}].", nameof(unconstrained));
        var values = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        Tensor? logDet = null;
        foreach (var p in parameters)
        {
            var (value, ld) = p.Bijector.Forward(unconstrained.narrow(1, p.Offset, p.UnconstrainedSize));
            values[p.Name] = p.Shape.Length == 0 ? value.squeeze(1) : value;
            logDet = logDet is null ? ld : logDet.Plus(ld);
        }
        return (values, logDet!);
    }

    internal Tensor DataTensor(string name, Tensor reference)
    {
        if (!data.TryGetValue(name, out var constant))
            throw new KeyNotFoundException($"Model '{Name}' has no data '{name}'. Data: {(data.Count == 0 ? "none" : string.Join(", ", data.Keys))}.");
        return constant.IsInteger ? constant.On(reference.device) : constant.Like(reference);
    }

    internal Tensor EvaluateLogDensity(Tensor unconstrained)
    {
        var (values, logDet) = Split(unconstrained);
        MinibatchRows? rows = null;
        if (minibatches is { } source)
        {
            var batch = source.Next();
            rows = new MinibatchRows(batch, source.Rows / (double)source.BatchSize, unconstrained);
        }
        var logP = logDensity!(new ModelContext(this, values, unconstrained, rows));
        if (logP is null || logP.dim() != 1 || logP.shape[0] != unconstrained.shape[0])
            throw new TargetException($"Model '{Name}': the log density returned shape [{(logP is null ? "null" : string.Join(", ", logP.shape))}]; " +
                                      $"expected [{unconstrained.shape[0]}], one value per point (sum over the data and the parameters' entries).");
        return logP.Plus(logDet.to(logP.dtype));
    }

    private void CheckNewName(string name, string argument)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new ArgumentException("A name is required.", argument);
        if (parameters.Any(p => p.Name == name) || data.ContainsKey(name))
            throw new ArgumentException($"Model '{Name}' already has a parameter or data named '{name}'.", argument);
    }

    private static void CheckShape(string name, long count, long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long expected = shape.Length == 0 ? count : shape.Aggregate(1L, (a, b) => a * b);
        if (shape.Any(s => s < 0) || expected != count)
            throw new ArgumentException($"Data '{name}' has {count} values but shape [{string.Join(", ", shape)}] holds {expected}.", nameof(shape));
    }

    private sealed class ModelTarget(BayesianModel model) : Target(model.Name, model.Dimension)
    {
        public override Tensor LogDensity(Tensor z) => model.EvaluateLogDensity(z);

        public override IReadOnlyList<string>? CoordinateNames => model.UnconstrainedNames();
    }

    /// <summary>Names of the unconstrained coordinates: an entry's name, or the constraint's transform around it (log tau).</summary>
    internal IReadOnlyList<string> UnconstrainedNames() =>
        parameters.SelectMany(p => p.Constraint == Constraint.Real
            ? p.EntryNames()
            : Enumerable.Range(1, p.UnconstrainedSize).Select(i => p.UnconstrainedSize == 1 && p.Shape.Length == 0 ? $"unconstrained({p.Name})" : $"unconstrained({p.Name})[{i}]"))
        .ToArray();
}
