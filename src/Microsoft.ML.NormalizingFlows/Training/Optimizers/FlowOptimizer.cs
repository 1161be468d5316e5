using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training.Optimizers;

/// <summary>
/// A stochastic optimizer over a flow's parameters: Adam or RMSprop with PyTorch's defaults and update order, so
/// results match TorchSharp's <c>optim.Adam</c> / <c>optim.RMSProp</c> step for step. They are written here because
/// TorchSharp 0.107's optimizers build about six temporary <see cref="Scalar"/>s per parameter per step
/// (<c>mul_(beta1)</c>, <c>add_(grad, alpha: 1 − beta1)</c>, …) that another thread's garbage collection can
/// finalize while libtorch reads them (see <see cref="RootedScalars"/>). Here every scalar is either rooted (the
/// fixed hyper-parameters) or held by a <c>using</c> until its call returns (the per-step learning rate and bias
/// corrections).
/// </summary>
public abstract class FlowOptimizer : IDisposable
{
    private bool disposed;

    protected FlowOptimizer(IEnumerable<Parameter> parameters, double learningRate)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Parameters = parameters.ToArray();
        if (Parameters.Count == 0) throw new ArgumentException("The optimizer needs at least one parameter.", nameof(parameters));
        LearningRate = learningRate;
    }

    protected IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>The step size of the next <see cref="Step"/> (the trainer sets it from the schedule every step).</summary>
    public double LearningRate { get; set; }

    /// <summary>Creates the optimizer the options name.</summary>
    public static FlowOptimizer Create(IEnumerable<Parameter> parameters, OptimizerKind kind, double learningRate) => kind switch
    {
        OptimizerKind.Adam => new AdamOptimizer(parameters, learningRate),
        OptimizerKind.RMSprop => new RmsPropOptimizer(parameters, learningRate),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown optimizer."),
    };

    /// <summary>Updates every parameter that has a gradient, without recording the update for autograd.</summary>
    public void Step()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        Update();
    }

    protected abstract void Update();

    /// <summary>Zeroes the gradients in place (as TorchSharp's optimizers do; they stay allocated for the next backward pass).</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters)
        {
            using var grad = p.grad;
            grad?.zero_();
        }
    }

    /// <summary>A state tensor for a parameter: zeros like it, outside any dispose scope (it lives as long as the optimizer).</summary>
    protected static Tensor StateLike(Parameter p) => torch.zeros_like(p).DetachFromDisposeScope();

    protected virtual void DisposeState() { }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        DisposeState();
        GC.SuppressFinalize(this);
    }
}
