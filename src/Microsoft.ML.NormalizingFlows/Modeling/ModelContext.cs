using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling;

/// <summary>
/// What a model's log density sees for one batch of B points: each parameter's constrained values, batch first
/// (a scalar parameter is [B], a vector [B, n], a matrix [B, n, m]), and the data on the batch's dtype and device.
/// </summary>
public sealed class ModelContext
{
    private readonly BayesianModel model;
    private readonly IReadOnlyDictionary<string, Tensor> values;
    private readonly Tensor reference;

    private readonly MinibatchRows? minibatch;

    internal ModelContext(BayesianModel model, IReadOnlyDictionary<string, Tensor> values, Tensor reference, MinibatchRows? minibatch = null)
    {
        this.minibatch = minibatch;
        this.model = model;
        this.values = values;
        this.reference = reference;
    }

    /// <summary>B, the number of points evaluated at once.</summary>
    public long BatchSize => reference.shape[0];

    /// <summary>A parameter's constrained values, batch first.</summary>
    public Tensor this[string parameter] => values.TryGetValue(parameter, out var value) ? value
        : throw new KeyNotFoundException($"Model '{model.Name}' has no parameter '{parameter}'. Parameters: {string.Join(", ", values.Keys)}.");

    /// <summary>This evaluation's minibatch of streamed rows (see <see cref="BayesianModel.Minibatch"/>).</summary>
    public MinibatchRows Minibatch => minibatch
        ?? throw new InvalidOperationException($"Model '{model.Name}' streams no minibatches: call Minibatch(mlContext, dataView, batchSize, columns) when declaring it.");

    /// <summary>Data bound with <see cref="BayesianModel.Data(string, double[], long[])"/> and friends: floating data in the batch's dtype, integer data (indices) as int64, on the batch's device.</summary>
    public Tensor Data(string name) => model.DataTensor(name, reference);
}
