using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>A detached copy of a module's parameters that can be written back (keep-best, divergence recovery).</summary>
internal sealed class ParameterSnapshot : IDisposable
{
    private readonly List<Parameter> parameters;
    private readonly Tensor[] values;

    public ParameterSnapshot(List<Parameter> parameters)
    {
        this.parameters = parameters;
        using var noGrad = torch.no_grad();
        values = parameters.Select(p => p.detach().clone().DetachFromDisposeScope()).ToArray();
    }

    /// <summary>Overwrites the stored copy with the parameters' current values.</summary>
    public void Capture()
    {
        using var noGrad = torch.no_grad();
        for (int i = 0; i < values.Length; i++) values[i].copy_(parameters[i]);
    }

    /// <summary>Writes the stored values back into the parameters.</summary>
    public void Restore()
    {
        using var noGrad = torch.no_grad();
        for (int i = 0; i < values.Length; i++) parameters[i].copy_(values[i]);
    }

    public void Dispose()
    {
        foreach (var v in values) v.Dispose();
    }
}
