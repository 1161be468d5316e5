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

    /// <summary>
    /// The score ∇_y log q_Y(y) at y = f(x), given the input's score ∇_x log q_X(x), with the parameters held
    /// constant: q_Y(f(x)) = q_X(x) / |det J(x)| gives ∇_y log q_Y = J(x)⁻ᵀ (∇_x log q_X(x) − ∇_x log|det J(x)|).
    /// Sticking-the-landing gradients need it for flows whose inverse is not differentiable (planar's is a
    /// bisection). Null (the default) when the transform has no closed form; the caller then uses autograd.
    /// </summary>
    internal virtual Tensor? PushScore(Tensor input, Tensor inputScore) => null;

    /// <summary>
    /// <see cref="Forward"/> and <see cref="PushScore"/> together: (y, log|det J|, ∇_y log q_Y or null). A transform
    /// that computes both in one pass overrides it; the score is not differentiable.
    /// </summary>
    internal virtual (Tensor Output, Tensor LogAbsDetJacobian, Tensor? OutputScore) ForwardWithScore(Tensor input, Tensor inputScore)
    {
        var (output, logDet) = Forward(input);
        return (output, logDet, PushScore(input.detach(), inputScore));
    }

    /// <summary>Throws a specific exception when <paramref name="input"/> is not a [B, d] batch for this transform.</summary>
    protected void CheckInput(Tensor input, string argumentName = "input")
    {
        if (input.dim() != 2 || input.shape[1] != Dimension)
            throw new ArgumentException(
                $"{GetType().Name} expects a batch of shape [B, {Dimension}] but got [{string.Join(", ", input.shape)}].", argumentName);
    }
}
