using Microsoft.ML.NormalizingFlows.Distributions;
using Microsoft.ML.NormalizingFlows.Training;

namespace Microsoft.ML.NormalizingFlows.Plotting;

/// <summary>
/// Writes frame_00001.png, frame_00002.png, … (samples of q over the true density) every N iterations,
/// for an animation of the fit. Pass it (or a progress that forwards to it) to
/// <see cref="VariationalTrainer.Fit"/>; the trainer reports synchronously every
/// <see cref="TrainerOptions.ReportEvery"/> iterations, so ReportEvery must divide N.
/// Every frame pushes the SAME base draws through the flow, so the motion shows the flow changing,
/// not sampling noise; the trainer's own random stream is untouched.
/// </summary>
public sealed class FrameRecorder : IProgress<TrainingProgress>
{
    private readonly FlowDistribution q;
    private readonly DensityGrid background;
    private readonly string directory;
    private readonly int every, samples, width, height;
    private readonly string flowTitle;
    private readonly List<string> written = [];

    public FrameRecorder(FlowDistribution q, DensityGrid background, string directory, int every, string flowTitle,
        int samples = 1000, int width = 600, int height = 600)
    {
        this.q = q ?? throw new ArgumentNullException(nameof(q));
        this.background = background ?? throw new ArgumentNullException(nameof(background));
        if (string.IsNullOrWhiteSpace(directory)) throw new ArgumentException("A frame directory is required.", nameof(directory));
        if (every <= 0) throw new ArgumentOutOfRangeException(nameof(every), every, "Frames must be written every N ≥ 1 iterations.");
        if (samples <= 0) throw new ArgumentOutOfRangeException(nameof(samples), samples, "The number of draws per frame must be positive.");
        this.directory = directory;
        this.every = every;
        this.samples = samples;
        this.width = width;
        this.height = height;
        this.flowTitle = flowTitle ?? "";
        Directory.CreateDirectory(directory);
    }

    /// <summary>Paths of the frames written so far, in order.</summary>
    public IReadOnlyList<string> Frames => written;

    public void Report(TrainingProgress value)
    {
        if (value.Iteration % every != 0) return;
        var path = Path.Combine(directory, $"frame_{written.Count + 1:D5}.png");
        var (xs, ys) = SamplesPlot.Draw(q, samples, seed: 7);
        SamplesPlot.Save(path, xs, ys, background, $"{flowTitle}\niteration {value.Iteration:N0} of {value.Iterations:N0}, ELBO {value.Elbo:F3}", width, height);
        written.Add(path);
    }
}
