using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Constraints;

/// <summary>Bijectors that act entry by entry: log |det J| is the sum of the entries' log-derivatives.</summary>
public abstract class ElementwiseBijector(long[] shape) : Bijector(shape)
{
    public override int UnconstrainedSize => checked((int)ValueSize);

    protected sealed override (Tensor Value, Tensor LogAbsDetJacobian) ForwardCore(Tensor unconstrained)
    {
        var (y, logDerivative) = Map(unconstrained);
        return (ToValueShape(y), logDerivative.sum(1));
    }

    protected sealed override Tensor InverseCore(Tensor value) => Unmap(value.reshape(value.shape[0], -1));

    /// <summary>Entry by entry: y and log dy/dx.</summary>
    protected abstract (Tensor Y, Tensor LogDerivative) Map(Tensor x);
    protected abstract Tensor Unmap(Tensor y);
}

/// <summary>Real values: the identity.</summary>
public sealed class IdentityBijector(long[] shape) : ElementwiseBijector(shape)
{
    protected override (Tensor Y, Tensor LogDerivative) Map(Tensor x) => (x, torch.zeros_like(x));
    protected override Tensor Unmap(Tensor y) => y;
}

/// <summary>y = lower + exp(x) (positive values when lower = 0).</summary>
public sealed class LowerBoundBijector(long[] shape, double lower) : ElementwiseBijector(shape)
{
    public double Lower { get; } = lower;
    protected override (Tensor Y, Tensor LogDerivative) Map(Tensor x) => (x.exp().Plus(Lower), x);
    protected override Tensor Unmap(Tensor y) => y.Plus(-Lower).log();
}

/// <summary>y = upper − exp(x).</summary>
public sealed class UpperBoundBijector(long[] shape, double upper) : ElementwiseBijector(shape)
{
    public double Upper { get; } = upper;
    protected override (Tensor Y, Tensor LogDerivative) Map(Tensor x) => (x.exp().SubtractedFrom(Upper), x);
    protected override Tensor Unmap(Tensor y) => y.SubtractedFrom(Upper).log();
}

/// <summary>y = lower + (upper − lower) σ(x); log dy/dx = log(upper − lower) − softplus(x) − softplus(−x).</summary>
public sealed class IntervalBijector : ElementwiseBijector
{
    public IntervalBijector(long[] shape, double lower, double upper) : base(shape)
    {
        if (!(upper > lower) || !double.IsFinite(lower) || !double.IsFinite(upper))
            throw new ArgumentOutOfRangeException(nameof(upper), upper, $"An interval needs finite bounds with upper > lower ({lower}).");
        Lower = lower;
        Upper = upper;
    }

    public double Lower { get; }
    public double Upper { get; }

    protected override (Tensor Y, Tensor LogDerivative) Map(Tensor x) =>
        ((torch.sigmoid(x) * S(Upper - Lower)).Plus(Lower), (x.Softplus().Plus(x.neg().Softplus())).SubtractedFrom(Math.Log(Upper - Lower)));

    protected override Tensor Unmap(Tensor y)
    {
        var unit = y.Plus(-Lower) / S(Upper - Lower);
        return unit.log() - torch.log1p(unit.neg());
    }
}
