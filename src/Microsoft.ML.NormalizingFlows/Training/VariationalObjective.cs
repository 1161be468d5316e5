using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// One stochastic evaluation of an objective: the loss to minimize, its per-sample parts, and the objective's value
/// (a scalar tensor, left on the device: the trainer reads it back only at its report intervals).
/// </summary>
public readonly record struct ObjectiveTerms(Tensor Loss, Tensor LogP, Tensor LogQ, Tensor Elbo)
{
    /// <summary>Draws of this step whose log p̃ or log q was not finite and that the objective gave weight 0
    /// (see <see cref="ImportanceWeightedElboObjective"/>), as a scalar tensor; null for objectives that do not drop draws.</summary>
    public Tensor? NonFiniteSamples { get; init; }
}

/// <summary>
/// What training minimizes. Implementations draw from q, evaluate the target and return per-sample
/// log p̃ and log q (shape [B]) so that the trainer can tell which term went non-finite.
/// </summary>
public abstract class VariationalObjective
{
    public abstract ObjectiveTerms Compute(FlowDistribution q, Target target, int batchSize, Generator generator);

    /// <summary>Refuses a batch that is not positive: an empty batch would give NaN, not an error.</summary>
    protected static void CheckBatchSize(int batchSize)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "The batch size (draws per step) must be positive.");
    }
}

/// <summary>
/// The reverse-KL ELBO E_q[log p̃(z) − log q(z)], reparameterized; loss = −ELBO. With
/// <see cref="GradientEstimator.StickingTheLanding"/> (or <see cref="GradientEstimator.DoublyReparameterized"/>, the same
/// estimator for one sample) the score term is dropped (<see cref="StoppedParameterLogProb"/>): the same expected gradient
/// with a variance that vanishes as q approaches p. Planar flows on CPU get that at almost no extra cost (the score
/// comes out of the sampling pass). Unlike <see cref="ImportanceWeightedElboObjective"/>, no draw is dropped: a
/// non-finite draw makes the step non-finite, and the trainer skips it.
/// </summary>
public sealed class ElboObjective : VariationalObjective
{
    public ElboObjective(GradientEstimator estimator = GradientEstimator.Standard)
    {
        if (!Enum.IsDefined(estimator)) throw new ArgumentOutOfRangeException(nameof(estimator), estimator, "Unknown gradient estimator.");
        Estimator = estimator;
    }

    public GradientEstimator Estimator { get; }

    public override ObjectiveTerms Compute(FlowDistribution q, Target target, int batchSize, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(target);
        CheckBatchSize(batchSize);
        if (Estimator == GradientEstimator.Standard)
        {
            var (z, logQ) = q.Sample(batchSize, generator);
            var logP = target.Evaluate(z);
            var elbo = (logP - logQ).mean();
            return new ObjectiveTerms(-elbo, logP, logQ, elbo.detach());
        }
        var (dtype, device) = q.Placement;
        var noise = torch.randn(batchSize, q.Dimension, dtype: dtype, device: device, generator: generator);
        var (draws, logQAtDraws, score) = q.SampleFromNoiseWithScore(noise);
        var logPAtDraws = target.Evaluate(draws);
        var pathOnly = score is null ? StoppedParameterLogProb.Compute(q, noise, draws, logQAtDraws) : StoppedParameterLogProb.WithScore(logQAtDraws, score, draws);
        var loss = -(logPAtDraws - pathOnly).mean();
        // The surrogate's value is log q itself (its added term is sᵀ(z − z) = 0 exactly), so −loss is the ELBO estimate.
        return new ObjectiveTerms(loss, logPAtDraws, logQAtDraws, loss.detach().neg());
    }
}
