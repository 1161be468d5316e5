using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Constraints;

/// <summary>
/// A K×K matrix's lower triangle (with or without the diagonal), row by row: its flat positions are kept as a
/// <see cref="CachedConstant"/>, so scattering and gathering on every forward pass builds no index tensor.
/// </summary>
internal sealed class LowerTriangle
{
    private readonly int k;
    private readonly CachedConstant positions;

    public LowerTriangle(int k, bool withDiagonal)
    {
        this.k = k;
        var rows = new List<long>();
        var columns = new List<long>();
        for (int i = 0; i < k; i++)
            for (int j = 0; j < (withDiagonal ? i + 1 : i); j++) { rows.Add(i); columns.Add(j); }
        Rows = rows.ToArray();
        Columns = columns.ToArray();
        positions = new CachedConstant(rows.Zip(columns, (r, c) => r * k + c).ToArray());
    }

    public long[] Rows { get; }
    public long[] Columns { get; }

    /// <summary>[B, m] entries → [B, K, K] with the entries in the lower triangle and zeros elsewhere.</summary>
    public Tensor Scatter(Tensor entries)
    {
        var matrix = torch.zeros(entries.shape[0], (long)k * k, dtype: entries.dtype, device: entries.device);
        return matrix.index_copy(1, positions.On(entries.device), entries).reshape(entries.shape[0], k, k);
    }

    /// <summary>[B, K, K] → [B, m] lower-triangle entries.</summary>
    public Tensor Gather(Tensor matrix) => matrix.reshape(matrix.shape[0], (long)k * k).index_select(1, positions.On(matrix.device));
}

/// <summary>
/// K(K − 1)/2 reals → the Cholesky factor L of a K×K correlation matrix (Stan's and NumPyro's construction):
/// partial correlations z = tanh(x) fill the strictly lower triangle, L_ij = z_ij √(Π_{k&lt;j}(1 − z_ik²)) and
/// L_ii = √(Π_{k&lt;i}(1 − z_ik²)), so every row has unit norm. log |det J| (w.r.t. the strictly lower entries) =
/// Σ_{i&gt;j} [log(1 − z_ij²) + ½ Σ_{k&lt;j} log(1 − z_ik²)].
/// </summary>
public sealed class CorrelationCholeskyBijector : Bijector
{
    private readonly int k;
    private readonly LowerTriangle strictlyLower;

    public CorrelationCholeskyBijector(int size) : base(new long[] { size, size })
    {
        if (size < 2) throw new ArgumentOutOfRangeException(nameof(size), size, "A correlation matrix needs at least 2×2 entries.");
        k = size;
        strictlyLower = new LowerTriangle(size, withDiagonal: false);
    }

    public override int UnconstrainedSize => k * (k - 1) / 2;

    protected override (Tensor Value, Tensor LogAbsDetJacobian) ForwardCore(Tensor unconstrained)
    {
        var z = strictlyLower.Scatter(torch.tanh(unconstrained));   // [B, K, K], zero on and above the diagonal
        var logOneMinusZ2 = torch.log1p(z.Squared().neg());                               // 0 where z = 0
        var exclusive = torch.cumsum(logOneMinusZ2, 2) - logOneMinusZ2;                    // Σ_{k<j} log(1 − z_ik²)
        var w = (exclusive * S(0.5)).exp();
        var eye = torch.eye(k, dtype: z.dtype, device: z.device);
        var l = (z * w).Plus(w * eye);
        var strict = strictlyLower.Gather(logOneMinusZ2.Plus(exclusive * S(0.5)));
        return (l, strict.sum(1));
    }

    protected override Tensor InverseCore(Tensor value)
    {
        var squares = value.Squared();
        var remaining = (torch.cumsum(squares, 2) - squares).SubtractedFrom(1);               // 1 − Σ_{k<j} L_ik²
        var z = strictlyLower.Gather(value / remaining.sqrt());
        return torch.atanh(z);
    }
}

/// <summary>
/// K(K + 1)/2 reals → a lower-triangular matrix with positive diagonal (the Cholesky factor of a covariance matrix):
/// strictly lower entries as they are, diagonal exp(x). log |det J| (w.r.t. the lower entries) = Σ diagonal x.
/// For a covariance with an LKJ prior, combine scales σ with a <see cref="CorrelationCholeskyBijector"/> value instead:
/// L_Σ = diag(σ) L_Ω.
/// </summary>
public sealed class LowerCholeskyBijector : Bijector
{
    private readonly int k;
    private readonly LowerTriangle lower;
    private readonly CachedConstant diagonalMask; // 1 where a lower entry sits on the diagonal

    public LowerCholeskyBijector(int size) : base(new long[] { size, size })
    {
        if (size < 1) throw new ArgumentOutOfRangeException(nameof(size), size, "A Cholesky factor needs at least 1×1 entries.");
        k = size;
        lower = new LowerTriangle(size, withDiagonal: true);
        diagonalMask = new CachedConstant(lower.Rows.Zip(lower.Columns, (r, c) => r == c ? 1L : 0L).ToArray());
    }

    public override int UnconstrainedSize => k * (k + 1) / 2;

    private Tensor DiagonalMask(Tensor like) => diagonalMask.On(like.device).to(ScalarType.Bool);

    protected override (Tensor Value, Tensor LogAbsDetJacobian) ForwardCore(Tensor unconstrained)
    {
        var onDiagonal = DiagonalMask(unconstrained);
        var entries = torch.where(onDiagonal, unconstrained.exp(), unconstrained);
        var logDet = torch.where(onDiagonal, unconstrained, torch.zeros_like(unconstrained)).sum(1);
        return (lower.Scatter(entries), logDet);
    }

    protected override Tensor InverseCore(Tensor value)
    {
        var entries = lower.Gather(value);
        return torch.where(DiagonalMask(entries), entries.log(), entries);
    }
}
