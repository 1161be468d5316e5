using Microsoft.ML.NormalizingFlows.Tensors;
using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Targets;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>A Monte Carlo ELBO estimate, and the exact KL(q‖p) when the target's log Z is known.</summary>
public readonly record struct ElboEstimate(double Elbo, double StandardError, int Samples, double? LogNormalizer)
{
    /// <summary>KL(q‖p) = log Z − ELBO (same standard error as the ELBO); null when log Z is unknown.</summary>
    public double? Kl => LogNormalizer is double logZ ? logZ - Elbo : null;

    public override string ToString() => Kl is double kl
        ? $"ELBO = {Elbo:F4} ± {StandardError:F4}, KL(q‖p) = {kl:F4} ± {StandardError:F4} nats ({Samples} draws)"
        : $"ELBO = {Elbo:F4} ± {StandardError:F4} ({Samples} draws)";
}

public static class Evaluation
{
    /// <summary>
    /// Draws pushed through the target at once by default. A likelihood over many rows builds [block, rows]
    /// intermediates, so blocks are kept moderate: 2,048 draws × 5,000 rows of float64 is 80 MB.
    /// </summary>
    public const int DefaultBlockSize = 2_048;

    /// <summary>
    /// Estimates E_q[log p̃ − log q] with fresh draws (in blocks, without gradients) and its standard
    /// error; with a known log Z this is an exact-in-expectation KL figure.
    /// </summary>
    public static ElboEstimate EstimateElbo(FlowDistribution q, Target target, int samples = 20_000, long seed = 12345, int blockSize = DefaultBlockSize)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(target);
        if (samples < 2) throw new ArgumentOutOfRangeException(nameof(samples), samples, "Need at least 2 samples for a standard error.");
        if (q.Dimension != target.Dimension)
            throw new ArgumentException($"The flow has dimension {q.Dimension} but target '{target.Name}' has dimension {target.Dimension}.", nameof(target));
        double sum = 0, sumSquares = 0;
        foreach (var (_, logP, logQ) in DrawBlocks(q, target, samples, seed, blockSize))
        {
            var w = (logP - logQ).to(ScalarType.Float64);
            sum += w.sum().item<double>();
            sumSquares += w.Squared().sum().item<double>();
        }
        double mean = sum / samples;
        double variance = Math.Max(0, (sumSquares - samples * mean * mean) / (samples - 1));
        return new ElboEstimate(mean, Math.Sqrt(variance / samples), samples, target.LogNormalizer);
    }

    /// <summary>
    /// The ELBO and its standard error from the means of <paramref name="blocks"/> equal blocks of draws (batch means).
    /// For a target whose every evaluation is noisy in its own way (a likelihood streamed in minibatches: each block
    /// sees one), the draws' spread misses that noise and the blocks' spread does not.
    /// </summary>
    internal static (double Elbo, double StandardError) EstimateElboByBlockMeans(FlowDistribution q, Target target, int samples, long seed, int blocks)
    {
        if (blocks < 2) throw new ArgumentOutOfRangeException(nameof(blocks), blocks, "Need at least 2 blocks for a standard error.");
        int perBlock = Math.Max(1, samples / blocks);
        var means = DrawBlocks(q, target, perBlock * blocks, seed, perBlock).Select(b => HostMemory.Single((b.LogP - b.LogQ).to(ScalarType.Float64).mean())).ToArray();
        double mean = means.Average();
        double variance = means.Sum(m => (m - mean) * (m - mean)) / (means.Length - 1);
        return (mean, Math.Sqrt(variance / means.Length));
    }

    /// <summary>
    /// Draws <paramref name="samples"/> points from q without gradients, in blocks of at most <paramref name="blockSize"/>, with the
    /// target evaluated on each block: (z, log p̃, log q). Each block's tensors live only until the next one is
    /// requested, so a caller copies out what it keeps.
    /// </summary>
    internal static IEnumerable<(Tensor Z, Tensor LogP, Tensor LogQ)> DrawBlocks(FlowDistribution q, Target target, int samples, long seed, int blockSize)
    {
        if (blockSize <= 0) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "The block size (draws evaluated at once) must be positive.");
        return DrawBlocksCore(q, target, samples, seed, blockSize);
    }

    private static IEnumerable<(Tensor Z, Tensor LogP, Tensor LogQ)> DrawBlocksCore(FlowDistribution q, Target target, int samples, long seed, int blockSize)
    {
        using var noGrad = torch.no_grad();
        var generator = new Generator((ulong)seed, q.Placement.Device);
        for (int done = 0; done < samples;)
        {
            using var scope = torch.NewDisposeScope();
            int n = Math.Min(blockSize, samples - done);
            var (z, logQ) = q.Sample(n, generator);
            yield return (z, target.Evaluate(z), logQ);
            done += n;
        }
    }
}
