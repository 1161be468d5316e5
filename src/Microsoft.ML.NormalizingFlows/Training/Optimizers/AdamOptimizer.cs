using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training.Optimizers;

/// <summary>Adam (Kingma &amp; Ba) with β = (0.9, 0.999), ε = 1e-8, in PyTorch's arithmetic order.</summary>
public sealed class AdamOptimizer : FlowOptimizer
{
    public const double Beta1 = 0.9, Beta2 = 0.999, Epsilon = 1e-8;

    private readonly Tensor firstMoment, secondMoment;

    public AdamOptimizer(IEnumerable<Parameter> parameters, double learningRate) : base(parameters, learningRate)
    {
        firstMoment = StateLikeParameters();
        secondMoment = StateLikeParameters();
    }

    protected override void Update(Tensor? accept)
    {
        var (negativeStep, sqrtCorrection2) = BiasCorrected();
        using var sqrtBiasCorrection2 = sqrtCorrection2.ToScalar();
        using var negativeStepSize = negativeStep.ToScalar();
        var grad = Flat.Gradients;
        if (accept is null)
        {
            firstMoment.mul_(S(Beta1)).add_(grad, S(1 - Beta1));
            secondMoment.mul_(S(Beta2)).addcmul_(grad, grad, S(1 - Beta2));
            var denominator = secondMoment.sqrt().div_(sqrtBiasCorrection2).add_(S(Epsilon), S(1));
            Flat.Values.addcdiv_(firstMoment, denominator, negativeStepSize);
            return;
        }
        // The same arithmetic out of place, each result kept only if the step is accepted (NaN gradients of a
        // rejected step are discarded by the selection, never multiplied into the state).
        var first = firstMoment.mul(S(Beta1)).add_(grad, S(1 - Beta1));
        var second = secondMoment.mul(S(Beta2)).addcmul_(grad, grad, S(1 - Beta2));
        var maskedDenominator = second.sqrt().div_(sqrtBiasCorrection2).add_(S(Epsilon), S(1));
        Commit(Flat.Values, Flat.Values.addcdiv(first, maskedDenominator, negativeStepSize), accept);
        Commit(firstMoment, first, accept);
        Commit(secondMoment, second, accept);
    }

    protected override void UpdateOnHost<T>(Span<T> values, ReadOnlySpan<T> gradients)
    {
        var first = HostState<T>(firstMoment);
        var second = HostState<T>(secondMoment);
        T beta1 = T.CreateChecked(Beta1), beta2 = T.CreateChecked(Beta2), epsilon = T.CreateChecked(Epsilon);
        T oneMinusBeta1 = T.CreateChecked(1 - Beta1), oneMinusBeta2 = T.CreateChecked(1 - Beta2);
        var (negativeStep, sqrtCorrection2) = BiasCorrected();
        T sqrtBiasCorrection2 = T.CreateChecked(sqrtCorrection2), negativeStepSize = T.CreateChecked(negativeStep);
        for (int i = 0; i < values.Length; i++)
        {
            T g = gradients[i];
            first[i] = first[i] * beta1 + oneMinusBeta1 * g;
            second[i] = second[i] * beta2 + oneMinusBeta2 * (g * g);
            values[i] += negativeStepSize * (first[i] / (T.Sqrt(second[i]) / sqrtBiasCorrection2 + epsilon));
        }
    }

    /// <summary>This step's −lr / (1 − β₁ᵗ) and √(1 − β₂ᵗ), shared by the tensor and the CPU update.</summary>
    private (double NegativeStepSize, double SqrtBiasCorrection2) BiasCorrected() =>
        (-LearningRate / (1 - Math.Pow(Beta1, Steps)), Math.Sqrt(1 - Math.Pow(Beta2, Steps)));

    protected override void DisposeState()
    {
        firstMoment.Dispose();
        secondMoment.Dispose();
    }
}
