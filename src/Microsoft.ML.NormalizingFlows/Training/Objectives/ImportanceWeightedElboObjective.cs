using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// The importance-weighted ELBO (Burda, Grosse &amp; Salakhutdinov 2016) with M inner samples:
/// L_M = E[log (1/M) Σ_m p̃(z_m)/q(z_m)], z_m ~ q. L_1 is the ELBO; L_M ≤ L_{M+1} ≤ log Z. Each step
/// draws batchSize × M points (batchSize outer rows of M). Training with M &gt; 1 rewards q for covering
/// p (mass-covering), which lowers the forward KL compared with the ELBO.
/// <para>
/// Non-finite target values: with <see cref="DropNonFiniteSamples"/> (default) a draw whose log p̃ or log q
/// is NaN/±∞ gets importance weight 0 (its log weight is −∞ in the inner log-sum-exp; an outer row with no
/// finite draw is left out of the batch mean) and is counted in <see cref="ObjectiveTerms.NonFiniteSamples"/>.
/// When some draw is bad the target is evaluated a second time with those draws detached from the graph, so
/// neither the values nor the target's own backward pass at those points can reach the parameters (should a
/// gradient still be non-finite, the trainer skips the step). With the flag off, any
/// non-finite draw makes the step non-finite and the trainer skips it.
/// </para>
/// <para>
/// Dropping reads one flag per step back to the host (whether any draw was bad, to decide on the second
/// evaluation); the plain ELBO and this objective without dropping read nothing per step.
/// </para>
/// </summary>
public sealed class ImportanceWeightedElboObjective : VariationalObjective
{
    public ImportanceWeightedElboObjective(int innerSamples = 1, GradientEstimator estimator = GradientEstimator.Standard, bool dropNonFiniteSamples = true)
    {
        if (innerSamples <= 0) throw new ArgumentOutOfRangeException(nameof(innerSamples), innerSamples, "The number of inner samples M must be positive.");
        if (!Enum.IsDefined(estimator)) throw new ArgumentOutOfRangeException(nameof(estimator), estimator, "Unknown gradient estimator.");
        InnerSamples = innerSamples;
        Estimator = estimator;
        DropNonFiniteSamples = dropNonFiniteSamples;
    }

    /// <summary>M.</summary>
    public int InnerSamples { get; }

    public GradientEstimator Estimator { get; }

    public bool DropNonFiniteSamples { get; }

    public override ObjectiveTerms Compute(FlowDistribution q, Target target, int batchSize, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(target);
        CheckBatchSize(batchSize);
        int m = InnerSamples;
        var (dtype, device) = q.Placement;
        var noise = torch.randn(batchSize * (long)m, q.Dimension, dtype: dtype, device: device, generator: generator);
        var (z, logQ) = q.SampleFromNoise(noise);
        var logP = target.Evaluate(z);
        if (DropNonFiniteSamples && !logP.isfinite().all().item<bool>())
        {
            // Re-evaluate with the bad draws cut off from the graph: masking log p̃ alone is not enough, since
            // the target's own backward pass can produce NaN at those points (e.g. sqrt of a negative number).
            var good = logP.isfinite().unsqueeze(1);
            logP = target.Evaluate(torch.where(good, z, z.detach()));
        }
        var logQForGradient = Estimator == GradientEstimator.Standard ? logQ : StoppedParameterLogProb.Compute(q, noise, z, logQ);

        var finite = logP.isfinite().logical_and(logQ.isfinite());
        var rows = (logP - logQForGradient).view(batchSize, m);
        Tensor? validRows = null;
        if (DropNonFiniteSamples)
        {
            // Weight 0 for a bad draw: log weight −∞. A row with no finite draw is left out; its entries are
            // set to 0 so that no NaN arises in the backward pass of log-sum-exp (its gradient is masked anyway).
            var finiteRows = finite.view(batchSize, m);
            validRows = finiteRows.any(1);
            rows = torch.where(finiteRows, rows, double.NegativeInfinity);
            rows = torch.where(validRows.unsqueeze(1), rows, 0.0);
        }
        var bound = torch.logsumexp(rows, 1) - S(Math.Log(m));                 // [B]: L_M per outer row
        Tensor perRowForGradient = bound;
        if (Estimator == GradientEstimator.DoublyReparameterized && m > 1)
        {
            var normalized = torch.softmax(rows, 1).detach();                // w̃ (0 for the dropped draws)
            var safeRows = torch.where(rows.isfinite(), rows, 0.0);
            perRowForGradient = bound.detach().Plus((normalized.Squared() * (safeRows - safeRows.detach())).sum(1));
        }

        Tensor loss, value;
        if (validRows is not null)
        {
            var count = validRows.sum();                                     // 0 → NaN value → the trainer skips the step
            loss = -torch.where(validRows, perRowForGradient, 0.0).sum() / count;
            value = torch.where(validRows, bound.detach(), 0.0).sum() / count;
        }
        else
        {
            loss = -perRowForGradient.mean();
            value = bound.detach().mean();
        }
        return new ObjectiveTerms(loss, logP, logQ, value) { NonFiniteSamples = finite.logical_not().sum() };
    }
}
