using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>Applies transforms in order; log|det J| of the composition is the sum of the parts'.</summary>
public sealed class CompositeTransform : FlowTransform
{
    private readonly ModuleList<FlowTransform> _steps;

    public CompositeTransform(int dimension, IEnumerable<FlowTransform> steps) : base(nameof(CompositeTransform), dimension)
    {
        var list = steps?.ToList() ?? throw new ArgumentNullException(nameof(steps));
        for (int i = 0; i < list.Count; i++)
        {
            if (list[i] is null) throw new ArgumentNullException(nameof(steps), $"Transform {i} is null.");
            if (list[i].Dimension != dimension)
                throw new ArgumentException($"Transform {i} ({list[i].GetType().Name}) has dimension {list[i].Dimension}, expected {dimension}.", nameof(steps));
        }
        _steps = new ModuleList<FlowTransform>(list.ToArray());
        RegisterComponents();
    }

    public IReadOnlyList<FlowTransform> Steps => _steps.ToList();

    public override bool HasInverse => _steps.All(s => s.HasInverse);

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        Tensor x = input;
        Tensor? logDet = null;
        foreach (var step in _steps)
        {
            var (y, ld) = step.Forward(x);
            logDet = logDet is null ? ld : logDet.Plus(ld);
            x = y;
        }
        return (x, logDet ?? torch.zeros(input.shape[0], dtype: input.dtype, device: input.device));
    }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input)
    {
        CheckInput(input);
        Tensor y = input;
        Tensor? logDet = null;
        for (int i = _steps.Count - 1; i >= 0; i--)
        {
            var (x, ld) = _steps[i].Inverse(y);
            logDet = logDet is null ? ld : logDet.Plus(ld);
            y = x;
        }
        return (y, logDet ?? torch.zeros(input.shape[0], dtype: input.dtype, device: input.device));
    }
}
