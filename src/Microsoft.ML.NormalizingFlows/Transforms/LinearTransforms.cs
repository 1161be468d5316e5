using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Transforms;

/// <summary>
/// y = x[:, π]: a fixed permutation of the coordinates (|det J| = 1). Use between autoregressive or
/// coupling layers so each sees a different ordering. The permutation is an int64 buffer (saved with the weights).
/// </summary>
public sealed class PermutationTransform : FlowTransform
{
    private readonly Tensor forwardIndex;
    private readonly Tensor inverseIndex;

    public PermutationTransform(int[] permutation) : base(nameof(PermutationTransform), permutation?.Length ?? 0)
    {
        ArgumentNullException.ThrowIfNull(permutation);
        if (!permutation.OrderBy(i => i).SequenceEqual(Enumerable.Range(0, permutation.Length)))
            throw new ArgumentException("Not a permutation of 0..d−1.", nameof(permutation));
        Permutation = (int[])permutation.Clone();
        var inverse = new long[permutation.Length];
        for (int i = 0; i < permutation.Length; i++) inverse[permutation[i]] = i;
        forwardIndex = torch.tensor(permutation.Select(i => (long)i).ToArray());
        inverseIndex = torch.tensor(inverse);
        register_buffer("forwardIndex", forwardIndex);
        register_buffer("inverseIndex", inverseIndex);
    }

    /// <summary>Output coordinate i is input coordinate Permutation[i].</summary>
    public IReadOnlyList<int> Permutation { get; }

    /// <summary>d−1, …, 0.</summary>
    public static PermutationTransform Reverse(int dimension) =>
        new(Enumerable.Range(0, dimension).Reverse().ToArray());

    /// <summary>A uniformly random permutation drawn from <paramref name="generator"/>.</summary>
    public static PermutationTransform Random(int dimension, Generator? generator) =>
        new(torch.randperm(dimension, generator: generator).data<long>().Select(i => (int)i).ToArray());

    public override bool HasInverse => true;

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        return (input.index_select(1, forwardIndex), torch.zeros(input.shape[0], dtype: input.dtype, device: input.device));
    }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input)
    {
        CheckInput(input);
        return (input.index_select(1, inverseIndex), torch.zeros(input.shape[0], dtype: input.dtype, device: input.device));
    }
}

/// <summary>
/// A learnable invertible linear map (Kingma &amp; Dhariwal 2018, Glow's LU form): y = W x + b with
/// W = P L (U + diag(exp(s))), P a fixed permutation, L unit lower-triangular, U strictly upper-triangular.
/// log|det J| = Σ s; the inverse is two triangular solves. It starts as W = P (a random permutation when
/// a generator is given, else the identity), b = 0.
/// </summary>
public sealed class LUInvertibleLinear : FlowTransform
{
    private readonly Parameter lower;
    private readonly Parameter upper;
    private readonly Parameter logDiagonal;
    private readonly Parameter bias;
    private readonly Tensor permutation;   // [d, d] permutation matrix, buffer
    private readonly Tensor strictLower;   // masks, buffers
    private readonly Tensor strictUpper;
    private readonly Tensor identity;

    public LUInvertibleLinear(int dimension, Generator? generator = null) : base(nameof(LUInvertibleLinear), dimension)
    {
        var order = generator is null ? torch.arange(S(0), S(dimension), S(1)) : torch.randperm(dimension, generator: generator);
        permutation = torch.eye(dimension).index_select(0, order);
        strictLower = torch.ones(dimension, dimension).tril(-1);
        strictUpper = torch.ones(dimension, dimension).triu(1);
        identity = torch.eye(dimension);
        lower = new Parameter(torch.zeros(dimension, dimension));
        upper = new Parameter(torch.zeros(dimension, dimension));
        logDiagonal = new Parameter(torch.zeros(dimension));
        bias = new Parameter(torch.zeros(dimension));
        register_buffer("permutation", permutation);
        register_buffer("strictLower", strictLower);
        register_buffer("strictUpper", strictUpper);
        register_buffer("identity", identity);
        RegisterComponents();
    }

    public override bool HasInverse => true;

    private (Tensor L, Tensor U) Factors() =>
        ((lower * strictLower).Plus(identity), (upper * strictUpper).Plus(torch.diag(logDiagonal.exp())));

    /// <summary>W = P L U.</summary>
    public Tensor Weight { get { var (l, u) = Factors(); return permutation.matmul(l).matmul(u); } }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        var y = torch.addmm(bias, input, Weight.t(), 1, 1);
        return (y, logDiagonal.sum().expand(input.shape[0]));
    }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input)
    {
        CheckInput(input);
        var (l, u) = Factors();
        // x = U⁻¹ L⁻¹ Pᵀ (y − b), with columns as samples.
        var rhs = permutation.t().matmul((input - bias).t());
        var v = torch.linalg.solve_triangular(l, rhs, upper: false, unitriangular: true);
        var x = torch.linalg.solve_triangular(u, v, upper: true).t();
        return (x, (-logDiagonal.sum()).expand(input.shape[0]));
    }
}

/// <summary>
/// ActNorm (Kingma &amp; Dhariwal 2018): y = x·exp(s) + b per coordinate, with data-dependent
/// initialization: the first batch seen in training mode (with ≥ 2 samples) sets s and b so that this
/// batch comes out with zero mean and unit variance per coordinate (in whichever direction it is first
/// called: Forward standardizes its output, Inverse its output). An "initialized" buffer records that
/// this happened, so a saved and reloaded ActNorm does not re-initialize over its trained values.
/// </summary>
public sealed class ActNorm : FlowTransform
{
    private readonly Parameter logScale;
    private readonly Parameter bias;
    private readonly Tensor initialized;   // [1]: 0 until the data-dependent init ran
    private bool knownInitialized;

    public ActNorm(int dimension) : base(nameof(ActNorm), dimension)
    {
        logScale = new Parameter(torch.zeros(dimension));
        bias = new Parameter(torch.zeros(dimension));
        initialized = torch.zeros(1);
        register_buffer("initialized", initialized);
        RegisterComponents();
    }

    /// <summary>True once the data-dependent initialization has run (or was loaded as done).</summary>
    public bool IsInitialized => knownInitialized || (knownInitialized = initialized.to(ScalarType.Float64).item<double>() != 0);

    public Tensor LogScale => logScale;
    public Tensor Bias => bias;

    public override bool HasInverse => true;

    private void MaybeInitialize(Tensor input, bool fromForward)
    {
        if (!training || input.shape[0] < 2 || IsInitialized) return;
        using var noGrad = torch.no_grad();
        var mean = input.mean(new long[] { 0 });
        var sd = input.std(0, unbiased: false).clamp_min(S(1e-6));
        if (fromForward)
        {
            // y = (x − mean)/sd: s = −log sd, b = −mean/sd.
            logScale.copy_(-sd.log());
            bias.copy_(-mean / sd);
        }
        else
        {
            // x = (y − b)·exp(−s) standardized: s = log sd, b = mean.
            logScale.copy_(sd.log());
            bias.copy_(mean);
        }
        initialized.fill_(S(1));
        knownInitialized = true;
    }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Forward(Tensor input)
    {
        CheckInput(input);
        MaybeInitialize(input, fromForward: true);
        return (torch.addcmul(bias, input, logScale.exp(), S(1)), logScale.sum().expand(input.shape[0]));
    }

    public override (Tensor Output, Tensor LogAbsDetJacobian) Inverse(Tensor input)
    {
        CheckInput(input);
        MaybeInitialize(input, fromForward: false);
        return ((input - bias) * torch.exp(-logScale), (-logScale.sum()).expand(input.shape[0]));
    }
}
