using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training.Optimizers;

/// <summary>RMSprop with α = 0.99, ε = 1e-8, no momentum, not centred, in PyTorch's arithmetic order.</summary>
public sealed class RmsPropOptimizer : FlowOptimizer
{
    public const double Alpha = 0.99, Epsilon = 1e-8;

    private readonly Tensor squareAverage;

    public RmsPropOptimizer(IEnumerable<Parameter> parameters, double learningRate) : base(parameters, learningRate)
    {
        squareAverage = StateLikeParameters();
    }

    protected override void Update(Tensor? accept)
    {
        using var negativeLearningRate = (-LearningRate).ToScalar();
        var grad = Flat.Gradients;
        if (accept is null)
        {
            squareAverage.mul_(S(Alpha)).addcmul_(grad, grad, S(1 - Alpha));
            var denominator = squareAverage.sqrt().add_(S(Epsilon), S(1));
            Flat.Values.addcdiv_(grad, denominator, negativeLearningRate);
            return;
        }
        var average = squareAverage.mul(S(Alpha)).addcmul_(grad, grad, S(1 - Alpha));
        var maskedDenominator = average.sqrt().add_(S(Epsilon), S(1));
        Commit(Flat.Values, Flat.Values.addcdiv(grad, maskedDenominator, negativeLearningRate), accept);
        Commit(squareAverage, average, accept);
    }

    protected override void UpdateOnHost<T>(Span<T> values, ReadOnlySpan<T> gradients)
    {
        var average = HostState<T>(squareAverage);
        T alpha = T.CreateChecked(Alpha), oneMinusAlpha = T.CreateChecked(1 - Alpha), epsilon = T.CreateChecked(Epsilon);
        T negativeLearningRate = T.CreateChecked(-LearningRate);
        for (int i = 0; i < values.Length; i++)
        {
            T g = gradients[i];
            average[i] = average[i] * alpha + oneMinusAlpha * (g * g);
            values[i] += negativeLearningRate * (g / (T.Sqrt(average[i]) + epsilon));
        }
    }

    protected override void DisposeState()
    {
        squareAverage.Dispose();
    }
}
