using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>One stochastic evaluation of an objective: the loss to minimize and its per-sample parts.</summary>
public readonly record struct ObjectiveTerms(Tensor Loss, Tensor LogP, Tensor LogQ, double Elbo)
{
    /// <summary>Draws of this step whose log p̃ or log q was not finite and that the objective gave weight 0
    /// (see <see cref="ImportanceWeightedElboObjective"/>); 0 for objectives that do not drop draws.</summary>
    public int NonFiniteSamples { get; init; }
}

/// <summary>
/// What training minimizes. Implementations draw from q, evaluate the target and return per-sample
/// log p̃ and log q (shape [B]) so that the trainer can tell which term went non-finite.
/// </summary>
public abstract class VariationalObjective
{
    public abstract ObjectiveTerms Compute(FlowDistribution q, Target target, int batchSize, Generator generator);
}

/// <summary>The reverse-KL ELBO E_q[log p̃(z) − log q(z)], reparameterized; loss = −ELBO.</summary>
public sealed class ElboObjective : VariationalObjective
{
    public override ObjectiveTerms Compute(FlowDistribution q, Target target, int batchSize, Generator generator)
    {
        var (z, logQ) = q.Sample(batchSize, generator);
        var logP = target.Evaluate(z);
        var elbo = (logP - logQ).mean();
        return new ObjectiveTerms(-elbo, logP, logQ, elbo.ToDouble());
    }
}
