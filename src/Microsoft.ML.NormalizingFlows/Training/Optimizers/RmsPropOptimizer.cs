using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training.Optimizers;

/// <summary>RMSprop with α = 0.99, ε = 1e-8, no momentum, not centred, in PyTorch's arithmetic order.</summary>
public sealed class RmsPropOptimizer : FlowOptimizer
{
    public const double Alpha = 0.99, Epsilon = 1e-8;

    private readonly Tensor[] squareAverages;

    public RmsPropOptimizer(IEnumerable<Parameter> parameters, double learningRate) : base(parameters, learningRate)
    {
        squareAverages = Parameters.Select(StateLike).ToArray();
    }

    protected override void Update()
    {
        using var negativeLearningRate = (-LearningRate).ToScalar();
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            var grad = p.grad;
            if (grad is null) continue;
            squareAverages[i].mul_(S(Alpha)).addcmul_(grad, grad, S(1 - Alpha));
            var denominator = squareAverages[i].sqrt().add_(S(Epsilon), S(1));
            p.addcdiv_(grad, denominator, negativeLearningRate);
        }
    }

    protected override void DisposeState()
    {
        foreach (var t in squareAverages) t.Dispose();
    }
}
