using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Constraints;

/// <summary>K reals → an increasing vector: y_1 = x_1, y_k = y_{k−1} + exp(x_k); log |det J| = Σ_{k≥2} x_k.</summary>
public sealed class OrderedBijector(int size) : Bijector(new long[] { size })
{
    public override int UnconstrainedSize => (int)Shape[0];

    protected override (Tensor Value, Tensor LogAbsDetJacobian) ForwardCore(Tensor x)
    {
        var steps = torch.cat(new[] { x.narrow(1, 0, 1), x.narrow(1, 1, UnconstrainedSize - 1).exp() }, 1);
        return (torch.cumsum(steps, 1), x.narrow(1, 1, UnconstrainedSize - 1).sum(1));
    }

    protected override Tensor InverseCore(Tensor y) =>
        torch.cat(new[] { y.narrow(1, 0, 1), (y.narrow(1, 1, UnconstrainedSize - 1) - y.narrow(1, 0, UnconstrainedSize - 1)).log() }, 1);
}

/// <summary>K reals → a positive increasing vector: y = cumsum(exp(x)); log |det J| = Σ x.</summary>
public sealed class PositiveOrderedBijector(int size) : Bijector(new long[] { size })
{
    public override int UnconstrainedSize => (int)Shape[0];

    protected override (Tensor Value, Tensor LogAbsDetJacobian) ForwardCore(Tensor x) => (torch.cumsum(x.exp(), 1), x.sum(1));

    protected override Tensor InverseCore(Tensor y) =>
        torch.cat(new[] { y.narrow(1, 0, 1), y.narrow(1, 1, UnconstrainedSize - 1) - y.narrow(1, 0, UnconstrainedSize - 1) }, 1).log();
}
