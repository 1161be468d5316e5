namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// An <see cref="IProgress{T}"/> that runs its handler on the reporting (training) thread, at once.
/// <see cref="Progress{T}"/> posts to a synchronization context instead, so its handler may run late or
/// concurrently with training: use this one to record frames, collect reports or cancel at an iteration.
/// </summary>
public sealed class InlineProgress<T>(Action<T> handler) : IProgress<T>
{
    private readonly Action<T> handler = handler ?? throw new ArgumentNullException(nameof(handler));

    public void Report(T value) => handler(value);
}
