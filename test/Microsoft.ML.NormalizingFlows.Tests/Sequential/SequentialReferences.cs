using Microsoft.VisualStudio.TestTools.UnitTesting;

namespace Microsoft.ML.NormalizingFlows.Tests.Sequential;

/// <summary>What the scan and HMM tests hold the library to: step-by-step loops, seeded inputs, a relative closeness check.</summary>
internal static class SequentialReferences
{
    public static torch.Tensor Random(long seed, params long[] shape) =>
        torch.randn(shape, dtype: ScalarType.Float64, generator: new torch.Generator((ulong)seed));

    /// <summary>x_t = a_t x_{t−1} + b_t step by step (x_0 = 0 when null).</summary>
    public static torch.Tensor RecurrenceLoop(torch.Tensor a, torch.Tensor b, torch.Tensor? initial)
    {
        long steps = b.shape[^1];
        var x = initial ?? torch.zeros(b.shape[..^1], dtype: b.dtype);
        var values = new List<torch.Tensor>();
        for (long t = 0; t < steps; t++)
        {
            x = a.select(-1, t) * x + b.select(-1, t);
            values.Add(x);
        }
        return torch.stack(values, -1);
    }

    /// <summary>The HMM forward algorithm step by step in log space (the reference the tree is held to).</summary>
    public static torch.Tensor ForwardLoop(torch.Tensor logInitial, torch.Tensor logTransition, torch.Tensor logEmission)
    {
        var alpha = logInitial + logEmission.select(-2, 0);
        for (long t = 1; t < logEmission.shape[^2]; t++) alpha = torch.logsumexp(alpha.unsqueeze(-1) + logTransition, -2) + logEmission.select(-2, t);
        return torch.logsumexp(alpha, -1);
    }

    /// <summary>Close relative to the expected values' largest magnitude (at least 1): log-likelihoods of long series are large.</summary>
    public static void AssertCloseRelative(torch.Tensor expected, torch.Tensor actual, double tolerance, string what)
    {
        CollectionAssert.AreEqual(expected.shape, actual.shape, what + ": shape");
        double scale = Math.Max(1, expected.abs().max().item<double>());
        double gap = (expected - actual).abs().max().item<double>();
        Assert.IsTrue(gap <= tolerance * scale, $"{what}: largest difference {gap:E2} (scale {scale:E2})");
    }
}
