using Microsoft.ML.NormalizingFlows.Training;

namespace Microsoft.ML.NormalizingFlows.Modeling;

/// <summary>What q is in the last stage of <see cref="PosteriorFitter"/>.</summary>
public enum ApproximationFamily
{
    /// <summary>A normalizing flow on top of the Gaussian stage's affine map (the default).</summary>
    Flow,
    /// <summary>The full-rank Gaussian of the second stage itself (the series' baseline).</summary>
    FullRankGaussian,
    /// <summary>A mean-field Gaussian, fitted from the mode (the series' other baseline).</summary>
    MeanFieldGaussian,
}

/// <summary>
/// The default recipe's settings (docs/models.md): every step can be changed. The defaults need no tuning on the
/// posteriordb models; all stages run in float64.
/// </summary>
public sealed class PosteriorFitOptions
{
    public ApproximationFamily Family { get; set; } = ApproximationFamily.Flow;

    /// <summary>Stage 1, the mode: Adam steps on −log p̃ from z = 0 (0 skips it; the Gaussian then starts at 0).</summary>
    public int ModeIterations { get; set; } = 1_000;
    public double ModeLearningRate { get; set; } = 0.05;

    /// <summary>Stage 2, a full-rank Gaussian by reverse KL (sticking-the-landing gradients) started at the mode.</summary>
    public int GaussianIterations { get; set; } = 4_000;
    public double GaussianLearningRate { get; set; } = 1e-2;
    public int GaussianBatchSize { get; set; } = 64;

    /// <summary>Stage 3, the flow, trained on the Gaussian's whitened space (its mean and Cholesky factor as a fixed affine map).</summary>
    public string Flow { get; set; } = "realnvp";
    public int FlowLayers { get; set; } = 6;

    /// <summary>
    /// The width of the flow's conditioner networks (the preset's <c>hidden</c> setting; a <c>hidden</c> entry in
    /// <see cref="FlowSettings"/> takes precedence). Null (the default): the posterior's dimension rounded up to a
    /// multiple of 64, from 64 to 256, so that a conditioner is at least as wide as the space it maps. On the
    /// 108-dimensional MRP posterior that is 128, which widened the few-group scales by 4–8 points against NUTS
    /// (σ_region −27 % → −19 %, σ_educ −31 % → −24 %, σ_age −32 % → −28 %) for 9 % more time per step; posteriors of up
    /// to 64 dimensions keep the presets' 64 (at 10 dimensions, 128 only cost 40 % more time).
    /// </summary>
    public int? FlowHidden { get; set; }

    /// <summary>The conditioner width the flow stage uses for a posterior of <paramref name="dimension"/> dimensions.</summary>
    public int FlowHiddenFor(int dimension) => FlowHidden ?? Math.Clamp((dimension + 63) / 64 * 64, 64, 256);

    /// <summary>
    /// What mixes the coordinates between the flow's layers (the preset's <c>permutation</c> setting; a
    /// <c>permutation</c> entry in <see cref="FlowSettings"/> takes precedence). Null (the default): a learned
    /// invertible linear map in LU form (<c>lu</c>, Glow's 1×1 convolution) between coupling layers (realnvp,
    /// nsf-coupling), and the preset's own choice for the others. Why: a coupling layer transforms one half of the
    /// coordinates given the other, so with fixed halves a parameter and those it depends on most may never condition
    /// each other directly; a learned mixing lets the flow choose. On the MRP posterior it brought the few-group
    /// scales' sds from 19–28 % too narrow to within 12 % of NUTS's at the same 11,000 steps, and within 15 % at the 7,000
    /// the recipe now takes (docs/models.md).
    /// </summary>
    public string? FlowPermutation { get; set; }

    /// <summary>The permutation setting the flow stage adds (null: the preset's own default).</summary>
    public string? FlowPermutationFor() =>
        FlowPermutation ?? (FlowFactory.IsCoupling(Flow) ? "lu" : null);

    public Dictionary<string, string>? FlowSettings { get; set; }
    /// <summary>
    /// Training steps per flow fit. 7,000: with the LU mixing the flow converges in fewer steps (each about 20 % dearer),
    /// and the MRP posterior's whole recipe stays within a fifth of NUTS's time (327 s against 2,195 s).
    /// </summary>
    public int FlowIterations { get; set; } = 7_000;
    public double FlowLearningRate { get; set; } = 1e-3;
    public int FlowBatchSize { get; set; } = 128;

    /// <summary>
    /// The flow stage's objective; null: the ELBO with sticking-the-landing gradients (one draw per point). A
    /// mass-covering choice is <c>new ImportanceWeightedElboObjective(k, GradientEstimator.DoublyReparameterized)</c>.
    /// </summary>
    public VariationalObjective? FlowObjective { get; set; }

    /// <summary>
    /// Runs the independent flow fits at the same time, one per core (each on one libtorch thread), when the
    /// model does not stream minibatches (a stream is one cursor); false: one after the other.
    /// </summary>
    public bool ParallelFlowFits { get; set; } = true;

    /// <summary>
    /// Independent flow fits (seeds) started at once; when their ELBOs disagree by more than <see cref="RestartTolerance"/>
    /// nats, up to <see cref="MaxRestarts"/> more are run, and the best ELBO is kept. A streamed model's ELBO estimates
    /// carry minibatch noise: there the fits disagree only beyond the tolerance plus two standard errors of the difference.
    /// </summary>
    public int FlowFits { get; set; } = 2;
    public double RestartTolerance { get; set; } = 0.5;
    public int MaxRestarts { get; set; } = 2;

    /// <summary>A wall-time budget for each training stage (schedules anneal by time too); null: none.</summary>
    public TimeSpan? StageTimeLimit { get; set; }

    /// <summary>Draws for ELBO comparisons between fits and for the fit report.</summary>
    public int EvaluationDraws { get; set; } = 4_000;
    public int ReportSamples { get; set; } = 10_000;

    public long Seed { get; set; }
    public int? Threads { get; set; }

    /// <summary>Receives each stage's name and training progress.</summary>
    public IProgress<(string Stage, TrainingProgress Progress)>? Progress { get; set; }

    internal void Validate()
    {
        if (!Enum.IsDefined(Family)) throw new ArgumentOutOfRangeException(nameof(Family), Family, "Unknown approximation family.");
        if (ModeIterations < 0) throw new ArgumentOutOfRangeException(nameof(ModeIterations), ModeIterations, "ModeIterations must be non-negative.");
        if (GaussianIterations <= 0) throw new ArgumentOutOfRangeException(nameof(GaussianIterations), GaussianIterations, "GaussianIterations must be positive.");
        if (FlowIterations <= 0) throw new ArgumentOutOfRangeException(nameof(FlowIterations), FlowIterations, "FlowIterations must be positive.");
        if (FlowFits <= 0) throw new ArgumentOutOfRangeException(nameof(FlowFits), FlowFits, "FlowFits must be positive.");
        if (FlowHidden is <= 0) throw new ArgumentOutOfRangeException(nameof(FlowHidden), FlowHidden, "FlowHidden must be positive (or null for the automatic width).");
        if (FlowPermutation is { } permutation && !FlowFactory.Permutations.Contains(permutation, StringComparer.OrdinalIgnoreCase))
            throw new ArgumentOutOfRangeException(nameof(FlowPermutation), permutation, $"Unknown permutation; use one of {string.Join(", ", FlowFactory.Permutations)} (or null for the default).");
        if (MaxRestarts < 0) throw new ArgumentOutOfRangeException(nameof(MaxRestarts), MaxRestarts, "MaxRestarts must be non-negative.");
        if (!(RestartTolerance > 0)) throw new ArgumentOutOfRangeException(nameof(RestartTolerance), RestartTolerance, "RestartTolerance must be positive.");
        if (EvaluationDraws < 100) throw new ArgumentOutOfRangeException(nameof(EvaluationDraws), EvaluationDraws, "EvaluationDraws must be at least 100.");
        if (!(ModeLearningRate > 0) || !(GaussianLearningRate > 0) || !(FlowLearningRate > 0))
            throw new ArgumentOutOfRangeException(nameof(FlowLearningRate), "Learning rates must be positive.");
        if (!FlowFactory.Names.Contains(Flow, StringComparer.OrdinalIgnoreCase))
            throw new ArgumentException($"Unknown flow '{Flow}'. Known flows: {string.Join(", ", FlowFactory.Names)}.", nameof(Flow));
    }
}
