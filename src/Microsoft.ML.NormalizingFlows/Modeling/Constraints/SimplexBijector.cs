using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Constraints;

/// <summary>
/// K − 1 reals → a point of the K-simplex by stick-breaking (Stan's): z_k = σ(x_k − log(K − k)), y_k = r_k z_k with the
/// remaining stick r_k = Π_{j&lt;k}(1 − z_j), y_K = r_K. The offset log(K − k) maps x = 0 to the simplex's centre.
/// log |det J| (w.r.t. y_1 … y_{K−1}) = Σ_k [log z_k + log(1 − z_k) + log r_k].
/// </summary>
public sealed class SimplexBijector : Bijector
{
    private readonly int k;
    private readonly CachedConstant offsets; // log(K − k), converted once per dtype and device

    public SimplexBijector(int size) : base(new long[] { size })
    {
        if (size < 2) throw new ArgumentOutOfRangeException(nameof(size), size, "A simplex needs at least 2 coordinates.");
        k = size;
        offsets = new CachedConstant(Enumerable.Range(1, k - 1).Select(i => Math.Log(k - i)).ToArray());
    }

    public override int UnconstrainedSize => k - 1;

    private Tensor Offsets(Tensor like) => offsets.Like(like);

    protected override (Tensor Value, Tensor LogAbsDetJacobian) ForwardCore(Tensor unconstrained)
    {
        var shifted = unconstrained - Offsets(unconstrained);
        var z = torch.sigmoid(shifted);
        var logOneMinusZ = shifted.Softplus().neg();                      // log(1 − σ(s)) = −softplus(s)
        var logRemaining = torch.cumsum(logOneMinusZ, 1) - logOneMinusZ;    // log r_k, exclusive
        var remaining = logRemaining.exp();
        var head = remaining * z;
        var last = logRemaining.narrow(1, k - 2, 1).Plus(logOneMinusZ.narrow(1, k - 2, 1)).exp();
        var value = torch.cat(new[] { head, last }, 1);
        var logDet = (logOneMinusZ - shifted.neg().Softplus()).Plus(logRemaining).sum(1); // log z + log(1 − z) + log r
        return (value, logDet);
    }

    protected override Tensor InverseCore(Tensor value)
    {
        var head = value.narrow(1, 0, k - 1);
        var remaining = (torch.cumsum(head, 1) - head).SubtractedFrom(1);
        var z = head / remaining;
        return (z.log() - torch.log1p(z.neg())).Plus(Offsets(value));
    }
}
