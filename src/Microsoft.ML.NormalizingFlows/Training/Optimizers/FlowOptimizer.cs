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
/// <para>
/// The parameters are re-seated into one contiguous buffer (<see cref="FlatParameters"/>), so an update is about a
/// dozen whole-buffer operations whatever the number of parameter tensors. <see cref="Step(Tensor)"/> takes the
/// decision to apply the step as a tensor on the device, so that a training loop can skip a non-finite step
/// without reading anything back to the host: a rejected step changes neither the parameters nor the moments.
/// </para>
/// </summary>
public abstract class FlowOptimizer : IDisposable
{
    private bool disposed;

    protected FlowOptimizer(IEnumerable<Parameter> parameters, double learningRate)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Flat = new FlatParameters(parameters.ToArray()); // refuses an empty set
        LearningRate = learningRate;
    }

    /// <summary>The parameters and gradients as two contiguous buffers.</summary>
    internal FlatParameters Flat { get; }

    /// <summary>All gradients end to end (for whole-model checks and clipping).</summary>
    internal Tensor Gradients => Flat.Gradients;

    /// <summary>Successful steps so far, as the bias corrections count them.</summary>
    protected long Steps { get; private set; }

    /// <summary>The step size of the next <see cref="Step()"/> (the trainer sets it from the schedule every step).</summary>
    public double LearningRate { get; set; }

    /// <summary>Creates the optimizer the options name.</summary>
    public static FlowOptimizer Create(IEnumerable<Parameter> parameters, OptimizerKind kind, double learningRate) => kind switch
    {
        OptimizerKind.Adam => new AdamOptimizer(parameters, learningRate),
        OptimizerKind.RMSprop => new RmsPropOptimizer(parameters, learningRate),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown optimizer."),
    };

    /// <summary>Updates the parameters from their gradients, without recording the update for autograd.</summary>
    public void Step() => Apply(null);

    /// <summary>
    /// Applies the step only where <paramref name="accept"/> (a boolean scalar on the parameters' device) is true,
    /// without reading it: a rejected step leaves parameters and moments exactly as they were, even when the
    /// gradients hold NaN. The bias corrections count this step as taken; call <see cref="Uncount"/> with the number of
    /// rejected steps once they are known (the trainer does at its report intervals), so the count catches up.
    /// </summary>
    internal void Step(Tensor accept) => Apply(accept);

    /// <summary>
    /// A training step's update, decided on the device: applied iff <paramref name="value"/> (the step's objective)
    /// and every gradient entry are finite, after clipping the gradients to <paramref name="clipNorm"/> when given
    /// (PyTorch's clip_grad_norm_ rule, min(1, maxNorm / (‖g‖₂ + 1e-6))). Returns max |g|, which is finite iff every
    /// entry is and, unlike a 2-norm, cannot overflow on large finite gradients; <see cref="WasAccepted"/> is the same
    /// rule on the values read back.
    /// </summary>
    internal Tensor StepIfFinite(Tensor value, double? clipNorm = null)
    {
        var gradients = Flat.Gradients;
        if (UpdateOnHostWhereCpu && gradients.device.type == DeviceType.CPU && value.device.type == DeviceType.CPU)
            return gradients.dtype switch
            {
                ScalarType.Float64 => StepIfFiniteOnHost<double>(value, clipNorm),
                ScalarType.Float32 => StepIfFiniteOnHost<float>(value, clipNorm),
                _ => StepIfFiniteOnDevice(value, clipNorm),
            };
        return StepIfFiniteOnDevice(value, clipNorm);
    }

    /// <summary>Whether <see cref="StepIfFinite"/> takes the compiled CPU pass for CPU buffers (tests turn it off to
    /// compare it with the tensor-operation path that other devices take).</summary>
    internal bool UpdateOnHostWhereCpu { get; set; } = true;

    private Tensor StepIfFiniteOnDevice(Tensor value, double? clipNorm)
    {
        var gradients = Flat.Gradients;
        var largest = gradients.abs().max();
        var accept = value.isfinite().logical_and(largest.isfinite());
        if (clipNorm is double maxNorm) // a rejected step's NaN makes no difference: it is not applied
            gradients.mul_(gradients.norm().Plus(1e-6).reciprocal().mul_(S(maxNorm)).clamp_max_(S(1.0)));
        Step(accept);
        return largest;
    }

    /// <summary>
    /// <see cref="StepIfFinite"/> where the buffers are CPU memory: the same decision, clipping and update, as one pass
    /// over the buffers in compiled code instead of about twenty tensor operations (each of which costs more than the
    /// arithmetic of a small flow's whole update). Nothing here waits for a device: CPU tensors are host memory.
    /// </summary>
    private Tensor StepIfFiniteOnHost<T>(Tensor value, double? clipNorm) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        Steps++; // rejected steps are uncounted by the trainer when it reads the step log, as on the device
        var gradients = Tensors.HostMemory.Elements<T>(Flat.Gradients);
        T largest = T.Zero;
        foreach (var g in gradients)
        {
            var magnitude = T.Abs(g);
            if (T.IsNaN(magnitude)) { largest = magnitude; break; } // as max() over the device: NaN if any entry is
            if (magnitude > largest) largest = magnitude;
        }
        bool accept = double.IsFinite(Tensors.HostMemory.Single(value)) && T.IsFinite(largest);
        if (accept)
        {
            if (clipNorm is double maxNorm)
            {
                double squares = 0;
                foreach (var g in gradients) squares += double.CreateChecked(g * g);
                var scale = T.CreateChecked(Math.Min(1.0, maxNorm / (Math.Sqrt(squares) + 1e-6)));
                for (int i = 0; i < gradients.Length; i++) gradients[i] *= scale;
            }
            UpdateOnHost(Tensors.HostMemory.Elements<T>(Flat.Values), gradients);
        }
        return torch.tensor(double.CreateChecked(largest), dtype: Flat.Gradients.dtype);
    }

    /// <summary>One update of <paramref name="values"/> from <paramref name="gradients"/> (the flat buffers as CPU memory),
    /// the same arithmetic as <see cref="Update"/>, with the optimizer's state read and written in place.</summary>
    protected abstract void UpdateOnHost<T>(Span<T> values, ReadOnlySpan<T> gradients) where T : unmanaged, System.Numerics.IFloatingPointIeee754<T>;

    /// <summary>A state buffer (made by <see cref="StateLikeParameters"/>) as CPU memory.</summary>
    protected static Span<T> HostState<T>(Tensor state) where T : unmanaged => Tensors.HostMemory.Elements<T>(state);

    /// <summary>Whether <see cref="StepIfFinite"/> applied a step, from its value and max |g| read back to the host.</summary>
    internal static bool WasAccepted(double value, double largestGradient) => double.IsFinite(value) && double.IsFinite(largestGradient);

    private void Apply(Tensor? accept)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        Steps++;
        Update(accept);
    }

    /// <summary>Takes back <paramref name="rejected"/> steps from the bias corrections' count.</summary>
    internal void Uncount(int rejected) => Steps -= rejected;

    /// <summary>One update on the flat buffers; with <paramref name="accept"/>, each state write is masked by it.</summary>
    protected abstract void Update(Tensor? accept);

    /// <summary><paramref name="updated"/> where the step is accepted, else <paramref name="current"/>, written into <paramref name="current"/>.</summary>
    protected static void Commit(Tensor current, Tensor updated, Tensor accept) => current.copy_(torch.where(accept, updated, current));

    /// <summary>Zeroes the gradients in place (they stay allocated, as views of the gradient buffer, for the next backward pass).</summary>
    public void ZeroGrad() => Flat.Gradients.zero_();

    /// <summary>State for the optimizer: zeros like the parameter buffer, outside any dispose scope.</summary>
    protected Tensor StateLikeParameters() => Flat.ZerosLike();

    protected virtual void DisposeState() { }

    public void Dispose()
    {
        if (disposed) return;
        disposed = true;
        DisposeState();
        Flat.Dispose();
        GC.SuppressFinalize(this);
    }
}
