using TorchSharp;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// Sets libtorch's intra-op thread count for the duration of a fit and puts the previous count back when
/// disposed: the count is process-wide, and a fit must not change it for the rest of the application.
/// </summary>
internal sealed class TorchThreadScope : IDisposable
{
    private readonly int? previous;

    private TorchThreadScope(int? threads)
    {
        if (threads is not int count) return;
        previous = torch.get_num_threads();
        if (count != previous) torch.set_num_threads(count);
    }

    /// <summary>With null, changes nothing.</summary>
    public static TorchThreadScope Enter(int? threads) => new(threads);

    public void Dispose()
    {
        if (previous is int count && torch.get_num_threads() != count) torch.set_num_threads(count);
    }
}
