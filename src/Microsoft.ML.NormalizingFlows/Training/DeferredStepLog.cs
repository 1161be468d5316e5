using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// What each training step reports (its objective value, whether it was finite, ...) kept as small tensors on the
/// device until the trainer's next report interval, then read back in one transfer. Reading a value every step
/// would make the host wait for the device every step; on a GPU that wait is most of a small step's cost.
/// </summary>
internal sealed class DeferredStepLog : IDisposable
{
    private readonly List<Tensor> rows = new();

    /// <summary>How many times the log was read back (each is one device-to-host transfer).</summary>
    public int Reads { get; private set; }

    /// <summary>Steps recorded since the last read.</summary>
    public int Pending => rows.Count;

    /// <summary>Keeps one step's values, a 1-D tensor of the same length for every step of a fit.</summary>
    public void Add(Tensor row) => rows.Add(row.detach().DetachFromDisposeScope());

    /// <summary>Every pending step's values, in order, in one transfer; the log is then empty.</summary>
    public double[][] Read()
    {
        if (rows.Count == 0) return Array.Empty<double[]>();
        double[] flat;
        using (var scope = torch.NewDisposeScope())
            flat = torch.stack(rows).to(ScalarType.Float64).cpu().data<double>().ToArray();
        Reads++;
        int width = flat.Length / rows.Count;
        var result = new double[rows.Count][];
        for (int i = 0; i < result.Length; i++) result[i] = flat.AsSpan(i * width, width).ToArray();
        Clear();
        return result;
    }

    private void Clear()
    {
        foreach (var row in rows) row.Dispose();
        rows.Clear();
    }

    public void Dispose() => Clear();
}
