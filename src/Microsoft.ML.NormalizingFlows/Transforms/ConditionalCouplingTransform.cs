using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>
/// A coupling layer whose conditioner also reads a context vector c (a conditional flow, as zuko and nflows
/// offer): the kept coordinates pass through and, together with c, parameterize a monotone elementwise map of
/// the transformed ones. The Jacobian with respect to x stays triangular, so log|det J| = Σ log g′ over the
/// transformed coordinates, whatever c is. Unlike <see cref="CouplingTransform"/> the kept part may be empty
/// (d = 1): the map is then driven by the context alone, or by learned constants when there is no context.
/// </summary>
public sealed class ConditionalCouplingTransform : nn.Module
{
    private readonly ResidualNetwork conditioner;
    private readonly CachedConstant? keptIndex;        // null when no coordinate is kept
    private readonly CachedConstant transformedIndex;
    private readonly int transformedCount;
    private readonly ElementwiseMap map;

    /// <param name="dimension">d ≥ 1, the coordinates transformed or kept.</param>
    /// <param name="contextDimension">The size of the context vector (0: an unconditional coupling).</param>
    /// <param name="mask">true = kept (conditioning); at least one coordinate must be transformed.</param>
    /// <param name="map">The elementwise map (affine or rational-quadratic spline).</param>
    /// <param name="hiddenWidth">Width of the conditioner.</param>
    /// <param name="residualBlocks">Residual blocks of the conditioner.</param>
    /// <param name="identityInit">Start as the identity (the conditioner's last layer is zero).</param>
    /// <param name="generator">Draws the initial weights.</param>
    public ConditionalCouplingTransform(int dimension, int contextDimension, bool[] mask, ElementwiseMap map, int hiddenWidth = 64,
        int residualBlocks = 1, bool identityInit = true, Generator? generator = null) : base(nameof(ConditionalCouplingTransform))
    {
        if (dimension <= 0) throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The dimension must be positive.");
        if (contextDimension < 0) throw new ArgumentOutOfRangeException(nameof(contextDimension), contextDimension, "The context dimension must be ≥ 0.");
        ArgumentNullException.ThrowIfNull(mask);
        this.map = map ?? throw new ArgumentNullException(nameof(map));
        if (mask.Length != dimension) throw new ArgumentException($"The mask has length {mask.Length}, expected {dimension}.", nameof(mask));
        if (mask.All(m => m)) throw new ArgumentException("The mask must transform at least one coordinate.", nameof(mask));
        Dimension = dimension;
        ContextDimension = contextDimension;
        Mask = (bool[])mask.Clone();
        long[] kept = Enumerable.Range(0, dimension).Where(i => mask[i]).Select(i => (long)i).ToArray();
        long[] transformed = Enumerable.Range(0, dimension).Where(i => !mask[i]).Select(i => (long)i).ToArray();
        keptIndex = kept.Length > 0 ? new CachedConstant(kept) : null;
        transformedIndex = new CachedConstant(transformed);
        transformedCount = transformed.Length;
        // With neither kept coordinates nor context the network reads a constant 1, so its output is a learned constant.
        int inputs = Math.Max(1, kept.Length + contextDimension);
        conditioner = ResidualNetwork.Dense(inputs, transformedCount * map.ParametersPerDimension, hiddenWidth, residualBlocks, identityInit, generator);
        RegisterComponents();
    }

    public int Dimension { get; }
    public int ContextDimension { get; }
    /// <summary>true = kept (conditioning) coordinate.</summary>
    public IReadOnlyList<bool> Mask { get; }
    public ElementwiseMap Map => map;

    /// <summary>x → (y, log|det ∂y/∂x|) given the context [B, c] (null when <see cref="ContextDimension"/> is 0).</summary>
    public (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input, Tensor? context) => Apply(input, context, inverse: false);

    /// <summary>y → (x, log|det ∂x/∂y|) given the same context.</summary>
    public (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input, Tensor? context) => Apply(input, context, inverse: true);

    private (Tensor, Tensor) Apply(Tensor input, Tensor? context, bool inverse)
    {
        if (input.dim() != 2 || input.shape[1] != Dimension)
            throw new ArgumentException($"{nameof(ConditionalCouplingTransform)} expects a batch of shape [B, {Dimension}] but got [{string.Join(", ", input.shape)}].", nameof(input));
        CheckContext(context, input.shape[0], ContextDimension);
        var transformedAt = transformedIndex.On(input.device);
        var x = input.index_select(1, transformedAt);
        var p = conditioner.call(ConditionerInput(input, context))
            .view(input.shape[0], transformedCount, map.ParametersPerDimension);
        var (mapped, logDerivative) = inverse ? map.Inverse(x, p) : map.Forward(x, p);
        return (input.index_copy(1, transformedAt, mapped), logDerivative.sum(1));
    }

    private Tensor ConditionerInput(Tensor input, Tensor? context)
    {
        var kept = keptIndex is null ? null : input.index_select(1, keptIndex.On(input.device));
        if (kept is not null && context is not null) return torch.cat(new[] { kept, context }, 1);
        return kept ?? context ?? torch.ones(input.shape[0], 1, dtype: input.dtype, device: input.device);
    }

    /// <summary>Throws a specific exception when a context does not match the batch and the expected width.</summary>
    internal static void CheckContext(Tensor? context, long rows, int contextDimension)
    {
        if (contextDimension == 0)
        {
            if (context is not null && context.shape[^1] != 0)
                throw new ArgumentException($"This flow takes no context, but a context of shape [{string.Join(", ", context.shape)}] was given.", nameof(context));
            return;
        }
        if (context is null) throw new ArgumentNullException(nameof(context), $"This flow is conditional: a context of shape [B, {contextDimension}] is required.");
        if (context.dim() != 2 || context.shape[0] != rows || context.shape[1] != contextDimension)
            throw new ArgumentException($"Expected a context of shape [{rows}, {contextDimension}] but got [{string.Join(", ", context.shape)}].", nameof(context));
    }
}
