using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Tensors;

/// <summary>
/// Linear algebra for log densities that must not abort a fit on one bad draw. A Gaussian-process or
/// multivariate-normal likelihood takes a Cholesky factor of a matrix built from the parameters; at some draws
/// (tiny length scales, huge amplitudes) that matrix is not numerically positive definite and
/// <c>torch.linalg.cholesky</c> throws for the whole batch. Here such a draw gets a NaN factor instead, so its
/// log p̃ is not finite and it is handled like any non-finite draw (given weight 0 by
/// <c>ImportanceWeightedElboObjective</c>, counted in the fit result) while the rest of the batch trains.
/// </summary>
public static class SafeLinalg
{
    /// <summary>The lower Cholesky factor of each matrix in a batch [..., n, n]; NaN where a matrix is not positive definite.</summary>
    public static Tensor Cholesky(Tensor matrices)
    {
        ArgumentNullException.ThrowIfNull(matrices);
        if (matrices.dim() < 2 || matrices.shape[^1] != matrices.shape[^2])
            throw new ArgumentException($"Cholesky needs square matrices; got shape [{string.Join(", ", matrices.shape)}].", nameof(matrices));
        var (factor, info) = torch.linalg.cholesky_ex(matrices, check_errors: false);
        var failed = info.ne(S(0L)).unsqueeze(-1).unsqueeze(-1);
        // The factor of a failed matrix is partial garbage: replace it whole, so nothing downstream looks finite.
        return torch.where(failed, torch.full_like(factor, S(double.NaN)), factor);
    }
}
