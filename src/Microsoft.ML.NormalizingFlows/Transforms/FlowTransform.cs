using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>
/// An invertible map of R^d (a bijector). <see cref="Forward"/> returns the output and the per-sample
/// log|det J| in one pass, so a flow never evaluates a layer twice.
/// Shapes: input [B, d] → output [B, d], log|det J| [B].
/// </summary>
public abstract class FlowTransform : nn.Module
{
    protected FlowTransform(string name, int dimension) : base(name)
    {
        if (dimension <= 0)
            throw new ArgumentOutOfRangeException(nameof(dimension), dimension, "The dimension of a transform must be positive.");
        Dimension = dimension;
    }

    /// <summary>The dimension d of the space the transform acts on.</summary>
    public int Dimension { get; }

    /// <summary>x → (y = f(x), log|det ∂f/∂x|) per sample.</summary>
    public abstract (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input);

    /// <summary>True when <see cref="Inverse"/> is available.</summary>
    public virtual bool HasInverse => false;

    /// <summary>y → (x = f⁻¹(y), log|det ∂f⁻¹/∂y|) per sample.</summary>
    public virtual (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input) =>
        throw new NotSupportedException($"{GetType().Name} has no inverse.");

    /// <summary>Throws a specific exception when <paramref name="input"/> is not a [B, d] batch for this transform.</summary>
    protected void CheckInput(Tensor input, string argumentName = "input")
    {
        if (input.dim() != 2 || input.shape[1] != Dimension)
            throw new ArgumentException(
                $"{GetType().Name} expects a batch of shape [B, {Dimension}] but got [{string.Join(", ", input.shape)}].", argumentName);
    }
}
