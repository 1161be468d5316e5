using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Modeling.Distributions;

/// <summary>Categorical over K classes from unnormalized log-probabilities (logits, last dimension K): logits[k] − logsumexp(logits) for an int64 class k.</summary>
public sealed class Categorical : Distribution
{
    private readonly Tensor logits;

    public Categorical(Tensor logits)
    {
        this.logits = Parameter(logits, nameof(logits));
        if (logits.dim() < 1) throw new ArgumentException("Categorical logits need a last dimension of K classes.", nameof(logits));
    }

    public int Classes => (int)logits.shape[^1];

    public override Tensor LogProb(Tensor value)
    {
        if (value.is_floating_point()) throw new ArgumentException($"Categorical values are class indices (an integer tensor); got {value.dtype}.", nameof(value));
        var normalized = logits - torch.logsumexp(logits, -1, keepdim: true);
        var k = value.to(ScalarType.Int64);
        var inSupport = k.ge(S(0L)).logical_and(k.lt(S((long)Classes)));
        var shape = torch.broadcast_shapes(normalized.shape[..^1], k.shape);
        var picked = normalized.expand(shape.Append(Classes).ToArray())
            .gather(-1, k.clamp(S(0L), S((long)Classes - 1)).expand(shape).unsqueeze(-1)).squeeze(-1);
        return Restrict(picked, inSupport.expand(shape));
    }
}
