using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Constraints;

/// <summary>
/// A smooth invertible map from unconstrained real vectors to the values of one constrained parameter, with the
/// log |det J| a model adds to its log density so that it never writes a Jacobian (NumPyro's biject_to). A batch of
/// B unconstrained vectors [B, <see cref="UnconstrainedSize"/>] maps to values [B, <see cref="Shape"/>…]. For values
/// with fewer degrees of freedom than entries (simplex, Cholesky factors), the Jacobian is taken with respect to the
/// free entries (a simplex's first K − 1 coordinates; a Cholesky factor's lower-triangular entries), the measure
/// their densities (Dirichlet, LKJ) are defined on.
/// </summary>
public abstract class Bijector
{
    protected Bijector(long[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        if (shape.Any(s => s <= 0)) throw new ArgumentException($"A parameter's shape must have positive sizes; got [{string.Join(", ", shape)}].", nameof(shape));
        Shape = shape;
    }

    /// <summary>The shape of one constrained value.</summary>
    public long[] Shape { get; }

    /// <summary>The number of unconstrained coordinates of one value.</summary>
    public abstract int UnconstrainedSize { get; }

    /// <summary>[B, n] unconstrained → ([B, Shape…] constrained, [B] log |det J|).</summary>
    public (Tensor Value, Tensor LogAbsDetJacobian) Forward(Tensor unconstrained)
    {
        ArgumentNullException.ThrowIfNull(unconstrained);
        if (unconstrained.dim() != 2 || unconstrained.shape[1] != UnconstrainedSize)
            throw new ArgumentException($"{GetType().Name} takes unconstrained points of shape [B, {UnconstrainedSize}]; got [{string.Join(", ", unconstrained.shape)}].", nameof(unconstrained));
        return ForwardCore(unconstrained);
    }

    /// <summary>[B, Shape…] constrained → [B, n] unconstrained.</summary>
    public Tensor Inverse(Tensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.dim() != Shape.Length + 1 || !value.shape.Skip(1).SequenceEqual(Shape))
            throw new ArgumentException($"{GetType().Name} takes values of shape [B, {string.Join(", ", Shape)}]; got [{string.Join(", ", value.shape)}].", nameof(value));
        return InverseCore(value);
    }

    protected abstract (Tensor Value, Tensor LogAbsDetJacobian) ForwardCore(Tensor unconstrained);
    protected abstract Tensor InverseCore(Tensor value);

    /// <summary>Elements of one value.</summary>
    protected long ValueSize => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>[B, n] → [B, Shape…].</summary>
    protected Tensor ToValueShape(Tensor flat) => flat.reshape(new[] { flat.shape[0] }.Concat(Shape).ToArray());
}
