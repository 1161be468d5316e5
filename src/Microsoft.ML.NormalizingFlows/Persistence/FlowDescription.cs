using System.Runtime.CompilerServices;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Transforms;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Persistence;

/// <summary>
/// Everything besides the weights that rebuilds a fitted flow: the <see cref="FlowFactory"/> spec, the base
/// family, an optional fixed output standardization (density estimation), an optional fixed preconditioning map
/// y = mean + L x (a posterior fit's Gaussian stage, <see cref="FixedLinearTransform"/>) and the precision.
/// Serialized as JSON, so fields later added to <see cref="FlowSpec"/> travel along.
/// </summary>
public sealed record FlowDescription(
    FlowSpec Spec,
    string BaseFamily = FlowDescription.StandardNormalBase,
    double[]? OutputLocation = null,
    double[]? OutputScale = null,
    string DType = "Float32",
    double[]? PreconditionMean = null,
    double[]? PreconditionCholesky = null)
{
    /// <summary>N(0, I), fixed (the presets' base).</summary>
    public const string StandardNormalBase = "standard-normal";
    /// <summary>N(μ, diag σ²) with learnable μ, σ.</summary>
    public const string DiagonalNormalBase = "diagonal-normal";

    private static readonly ConditionalWeakTable<FlowDistribution, FlowDescription> Built = new();

    /// <summary>Builds the flow this description describes, with freshly initialized weights (load a state into it).</summary>
    public FlowDistribution Build()
    {
        if (Spec is null) throw new InvalidDataException("The flow description has no spec.");
        var q = FlowFactory.Create(Spec);
        int d = Spec.Dimension;
        BaseDistribution baseDistribution = q.Base;
        FlowTransform? transform = q.Transform;
        bool changed = false;
        switch (BaseFamily)
        {
            case StandardNormalBase: break;
            case DiagonalNormalBase when q.Transform is not null:
                baseDistribution = new DiagonalNormal(d);
                changed = true;
                break;
            case DiagonalNormalBase: break; // a Gaussian family is its own base
            default:
                throw new ArgumentException($"Unknown base family '{BaseFamily}'. Known: {StandardNormalBase}, {DiagonalNormalBase}.", nameof(BaseFamily));
        }
        if (OutputLocation is not null || OutputScale is not null)
        {
            if (OutputLocation?.Length != d || OutputScale?.Length != d)
                throw new InvalidDataException($"The output standardization must have {d} locations and {d} scales.");
            var affine = new FixedAffineTransform(OutputLocation, OutputScale);
            transform = transform is null ? affine : new CompositeTransform(d, new[] { transform, affine });
            changed = true;
        }
        if (PreconditionMean is not null || PreconditionCholesky is not null)
        {
            if (PreconditionMean?.Length != d || PreconditionCholesky?.Length != d * d)
                throw new InvalidDataException($"The preconditioning map must have a mean of {d} entries and a {d}×{d} Cholesky factor.");
            var factor = new double[d, d];
            for (int i = 0; i < d; i++) for (int j = 0; j < d; j++) factor[i, j] = PreconditionCholesky[i * d + j];
            FlowTransform linear = new FixedLinearTransform(PreconditionMean, factor);
            transform = transform is null ? linear : new CompositeTransform(d, new[] { transform, linear });
            changed = true;
        }
        var flow = changed ? new FlowDistribution(baseDistribution, transform) { Spec = Spec } : q;
        var dtype = ParseDType(DType);
        if (dtype != ScalarType.Float32) flow.to(dtype);
        Built.AddOrUpdate(flow, this);
        return flow;
    }

    /// <summary>The description of a flow built by <see cref="Build"/> or by <see cref="FlowFactory"/>.</summary>
    public static FlowDescription Of(FlowDistribution flow)
    {
        ArgumentNullException.ThrowIfNull(flow);
        var dtype = flow.Placement.DType.ToString();
        if (Built.TryGetValue(flow, out var description)) return description with { DType = dtype };
        if (flow.Spec is null)
            throw new InvalidOperationException(
                "This flow was assembled by hand (it has no FlowSpec), so it cannot be rebuilt from a file. Build it with FlowFactory.Create, " +
                "FlowDescription.Build or FlowBuilder (whose flows record their steps unless FlowBuilder.Add received an outside transform or WithBase an unlisted base).");
        return new FlowDescription(flow.Spec, DType: dtype);
    }

    internal static ScalarType ParseDType(string? name) => name switch
    {
        "Float32" => ScalarType.Float32,
        "Float64" => ScalarType.Float64,
        _ => throw new InvalidDataException($"Unsupported precision '{name}' (expected Float32 or Float64)."),
    };
}
