using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training.Optimizers;

/// <summary>Adam (Kingma &amp; Ba) with β = (0.9, 0.999), ε = 1e-8, in PyTorch's arithmetic order.</summary>
public sealed class AdamOptimizer : FlowOptimizer
{
    public const double Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8;

    private readonly Tensor[] firstMoments, secondMoments;
    private long steps;

    public AdamOptimizer(IEnumerable<Parameter> parameters, double learningRate) : base(parameters, learningRate)
    {
        firstMoments = Parameters.Select(StateLike).ToArray();
        secondMoments = Parameters.Select(StateLike).ToArray();
    }

    protected override void Update()
    {
        steps++;
        double biasCorrection1 = 1 - Math.Pow(Beta1, steps);
        double biasCorrection2 = 1 - Math.Pow(Beta2, steps);
        using var sqrtBiasCorrection2 = Math.Sqrt(biasCorrection2).ToScalar();
        using var negativeStepSize = (-LearningRate / biasCorrection1).ToScalar();
        for (int i = 0; i < Parameters.Count; i++)
        {
            var p = Parameters[i];
            var grad = p.grad;
            if (grad is null) continue;
            firstMoments[i].mul_(S(Beta1)).add_(grad, S(1 - Beta1));
            secondMoments[i].mul_(S(Beta2)).addcmul_(grad, grad, S(1 - Beta2));
            var denominator = secondMoments[i].sqrt().div_(sqrtBiasCorrection2).add_(S(Epsilon), S(1));
            p.addcdiv_(firstMoments[i], denominator, negativeStepSize);
        }
    }

    protected override void DisposeState()
    {
        foreach (var t in firstMoments.Concat(secondMoments)) t.Dispose();
    }
}
