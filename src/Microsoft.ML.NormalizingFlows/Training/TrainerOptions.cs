using static TorchSharp.torch;

namespace Microsoft.ML.NormalizingFlows.Training;

/// <summary>Which stochastic optimizer updates the flow's parameters.</summary>
public enum OptimizerKind
{
    Adam,
    RMSprop,
}

/// <summary>Numeric precision of training. Ill-conditioned posteriors may need Float64.</summary>
public enum Precision
{
    Float32,
    Float64,
}

/// <summary>Settings of <see cref="VariationalTrainer"/>. Defaults reproduce the seed's experiment.</summary>
public sealed partial class TrainerOptions
{
    /// <summary>Optimizer steps.</summary>
    public int Iterations { get; set; } = 20_000;

    /// <summary>Monte Carlo draws per step.</summary>
    public int BatchSize { get; set; } = 128;

    public double LearningRate { get; set; } = 6e-4;

    public OptimizerKind Optimizer { get; set; } = OptimizerKind.Adam;

    /// <summary>Exponential decay γ applied to the learning rate after every step (1 = constant; the seed's second experiment uses 0.999).</summary>
    public double LearningRateDecay { get; set; } = 1.0;

    /// <summary>Seeds the draws (same seed, same flow initialization = same result).</summary>
    public long Seed { get; set; } = 0;

    public Precision Precision { get; set; } = Precision.Float32;

    /// <summary>"cpu", "cuda", "cuda:N" or "auto" (CUDA when available).</summary>
    public string Device { get; set; } = "cpu";

    /// <summary>Intra-op threads for TorchSharp (null: leave TorchSharp's setting alone).</summary>
    public int? Threads { get; set; }

    /// <summary>How often (in iterations) progress is reported.</summary>
    public int ReportEvery { get; set; } = 500;

    /// <summary>Non-finite steps in a row after which training stops with <see cref="TrainingDivergedException"/>.</summary>
    public int MaxConsecutiveNonFiniteSteps { get; set; } = 20;

    /// <summary>The objective; null means the standard ELBO (<see cref="ElboObjective"/>).</summary>
    public VariationalObjective? Objective { get; set; }

    internal ScalarType DType => Precision == Precision.Float64 ? ScalarType.Float64 : ScalarType.Float32;

    /// <summary>Largest <see cref="BatchSize"/> accepted: 2^24 draws per step.</summary>
    public const int MaxBatchSize = 1 << 24;

    /// <summary>Largest batch in values (draws × dimension): 2^26, 256 MB per float32 intermediate (a flow keeps several per layer).</summary>
    public const long MaxBatchElements = 1L << 26;

    /// <summary>Refuses a batch whose tensors could not be allocated, before any is.</summary>
    internal void RequireBatchFits(int dimension)
    {
        if ((long)BatchSize * dimension > MaxBatchElements)
            throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize,
                $"BatchSize × dimension = {BatchSize} × {dimension} = {(long)BatchSize * dimension:N0} values per tensor exceeds {MaxBatchElements:N0}; use a smaller BatchSize.");
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (Iterations <= 0) throw new ArgumentOutOfRangeException(nameof(Iterations), Iterations, "Iterations must be positive.");
        if (BatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be positive.");
        if (BatchSize > MaxBatchSize) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, $"BatchSize must be at most {MaxBatchSize:N0} draws per step.");
        if (!(LearningRate > 0) || double.IsInfinity(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "LearningRate must be positive and finite.");
        if (!(LearningRateDecay > 0 && LearningRateDecay <= 1)) throw new ArgumentOutOfRangeException(nameof(LearningRateDecay), LearningRateDecay, "LearningRateDecay must lie in (0, 1].");
        if (!Enum.IsDefined(Optimizer)) throw new ArgumentOutOfRangeException(nameof(Optimizer), Optimizer, "Unknown optimizer.");
        if (!Enum.IsDefined(Precision)) throw new ArgumentOutOfRangeException(nameof(Precision), Precision, "Unknown precision.");
        if (Threads is <= 0) throw new ArgumentOutOfRangeException(nameof(Threads), Threads, "Threads must be positive when set.");
        if (ReportEvery <= 0) throw new ArgumentOutOfRangeException(nameof(ReportEvery), ReportEvery, "ReportEvery must be positive.");
        if (MaxConsecutiveNonFiniteSteps <= 0) throw new ArgumentOutOfRangeException(nameof(MaxConsecutiveNonFiniteSteps), MaxConsecutiveNonFiniteSteps, "MaxConsecutiveNonFiniteSteps must be positive.");
        ValidateReliability();
        DeviceSelector.Resolve(Device);
    }
}
