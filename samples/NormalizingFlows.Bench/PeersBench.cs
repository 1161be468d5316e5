using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.NormalizingFlows;
using Microsoft.ML.NormalizingFlows.Targets;
using Microsoft.ML.NormalizingFlows.Training;

/// <summary>
/// "peers": CPU time per reverse-KL training step of the six configurations issue 13 names (2-D ring: realnvp K = 8,
/// nsf-coupling K = 6, iaf K = 6; 50-D dense Gaussian: realnvp K = 6, nsf-coupling K = 4, iaf K = 4; hidden 64,
/// batch 256, 1 thread), best of 3 × 400 steps. With --peers it also runs shared/bench/peers/peers_step.py for zuko
/// and normflows on the same configurations (their sources on PYTHONPATH, Debian's python3-torch; see that README),
/// and prints our CPU time over the faster peer's. The peers run on torch 1.13, whose kernels are several times
/// slower than libtorch 2.10's, so the ratio mixes kernel speed with operation count.
/// With --ops it instead counts the tensor operations of one step on each side (see <see cref="PeersBench.CountOurs"/>
/// and peer_ops.py beside this file): new tensors returned by operations, in-place operations, and the autograd
/// nodes the backward pass runs.
/// </summary>
internal static partial class BenchVerbs
{
    static partial void RegisterPeers() => Add("peers",
        "CPU ms per training step of the six issue-13 configurations; --peers [SCRIPT] also times zuko and normflows ([--python PATH] [--iters N]); --ops counts operations per step instead",
        PeersBench.Run);
}

internal static class PeersBench
{
    private static readonly (string Target, string PeerTarget, int Dimension, string Flow, string PeerFlow, int Layers)[] Rows =
    {
        ("ring", "ring", 2, "realnvp", "realnvp", 8), ("ring", "ring", 2, "nsf-coupling", "nsf", 6), ("ring", "ring", 2, "iaf", "iaf", 6),
        ("correlated-gaussian", "gauss", 50, "realnvp", "realnvp", 6), ("correlated-gaussian", "gauss", 50, "nsf-coupling", "nsf", 4),
        ("correlated-gaussian", "gauss", 50, "iaf", "iaf", 4),
    };

    public static int Run(string[] args)
    {
        string? script = null;
        bool peers = false, ops = false;
        string python = "/usr/bin/python3";
        int iterations = 400;
        for (int i = 0; i < args.Length; i++)
            switch (args[i])
            {
                case "--peers":
                    peers = true;
                    if (i + 1 < args.Length && args[i + 1].EndsWith(".py", StringComparison.Ordinal)) script = args[++i];
                    break;
                case "--python": python = args[++i]; break;
                case "--ops": ops = true; break;
                case "--iters": iterations = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine($"error: unknown option '{args[i]}'"); return 2;
            }
        if (peers)
        {
            script ??= SharedFiles.FindUpward(Path.Combine("shared", "bench", "peers", "peers_step.py"));
            if (script is null) { Console.Error.WriteLine("error: --peers: shared/bench/peers/peers_step.py not found; pass its path."); return 2; }
        }
        if (ops) return CountOperations(peers ? python : null, script);
        Console.WriteLine($"CPU ms per training step (batch 256, hidden 64, 1 thread; ours: best of 3 × {iterations} steps)");
        Console.WriteLine($"{"configuration",-28}{"ours",9}{(peers ? $"{"zuko",9}{"normflows",11}{"ours/faster",13}" : "")}");
        foreach (var row in Rows)
        {
            double ours = Ours(row.Target, row.Flow, row.Layers, iterations);
            string line = $"{row.Dimension}-D {row.Flow} K = {row.Layers}";
            if (!peers) { Console.WriteLine($"{line,-28}{ours,9:F2}"); continue; }
            double? zuko = Peer(python, script!, "zuko", row.PeerFlow, row.Dimension, row.Layers, row.PeerTarget, iterations);
            double? normflows = Peer(python, script!, "normflows", row.PeerFlow, row.Dimension, row.Layers, row.PeerTarget, iterations);
            double faster = Math.Min(zuko ?? double.PositiveInfinity, normflows ?? double.PositiveInfinity);
            Console.WriteLine($"{line,-28}{ours,9:F2}{Show(zuko),9}{Show(normflows),11}{(double.IsFinite(faster) ? (ours / faster).ToString("F2", CultureInfo.InvariantCulture) : "–"),13}");
        }
        return 0;
    }

    /// <summary>The operation-count table: ours beside zuko's and normflows' (when a peers script is given).</summary>
    private static int CountOperations(string? python, string? script)
    {
        string? counter = script is null ? null : Path.Combine(AppContext.BaseDirectory, "peer_ops.py");
        Console.WriteLine("tensor operations per training step (batch 256, hidden 64): new tensors + in-place + autograd nodes = total");
        Console.WriteLine($"{"configuration",-28}{"ours",22}{(script is null ? "" : $"{"zuko",22}{"normflows",22}{"ours/fewer",12}")}");
        foreach (var row in Rows)
        {
            var ours = CountOurs(row.Target, row.Flow, row.Layers);
            string line = $"{row.Dimension}-D {row.Flow} K = {row.Layers}";
            if (script is null) { Console.WriteLine($"{line,-28}{Format(ours),22}"); continue; }
            var zuko = CountPeer(python!, counter!, script, "zuko", row);
            var normflows = CountPeer(python!, counter!, script, "normflows", row);
            long fewer = Math.Min(zuko?.Total ?? long.MaxValue, normflows?.Total ?? long.MaxValue);
            Console.WriteLine($"{line,-28}{Format(ours),22}{(zuko is { } z ? Format(z) : "failed"),22}{(normflows is { } n ? Format(n) : "failed"),22}" +
                              $"{(fewer < long.MaxValue ? (ours.Total / (double)fewer).ToString("F2", CultureInfo.InvariantCulture) : "–"),12}");
        }
        return 0;
    }

    private readonly record struct OperationCount(long New, long InPlace, long Nodes)
    {
        public long Total => New + InPlace + Nodes;
    }

    private static string Format(OperationCount c) => $"{c.New}+{c.InPlace}+{c.Nodes}={c.Total}";

    /// <summary>
    /// Our side, measured on the trainer itself: every operation that returns a tensor gives TorchSharp a new handle,
    /// which its dispose-scope statistics count, so the difference between a 300- and a 100-step fit over 200 is the
    /// new tensors of one step (setup cancels; the reads at window ends are included). The autograd nodes are the
    /// non-leaf tensors that require grad after the step's forward pass (sampling, log p̃, the mean), i.e. what
    /// backward runs. In-place operations return no new handle, so they are not measured; by construction a step on CPU
    /// has 1 (the gradient buffer's zero_; the update is one compiled pass over the buffers, not tensor operations; on
    /// other devices the masked update adds 7: three copy_, add_, addcmul_, div_, add_).
    /// </summary>
    private static OperationCount CountOurs(string targetName, string flow, int layers)
    {
        var target = TargetGallery.Create(targetName);
        var statistics = TorchSharp.DisposeScopeManager.Statistics;
        long Created() => statistics.CreatedInScopeCount + statistics.CreatedOutsideScopeCount;
        long CreatedByFit(int iterations)
        {
            var q = FlowFactory.Create(flow, target.Dimension, layers, seed: 1);
            long before = Created();
            VariationalTrainer.Fit(q, target, new TrainerOptions { Iterations = iterations, BatchSize = 256, LearningRate = 1e-3, Threads = 1, ReportEvery = iterations, Seed = 1 });
            return Created() - before;
        }
        long perStep = (CreatedByFit(300) - CreatedByFit(100)) / 200;
        var model = FlowFactory.Create(flow, target.Dimension, layers, seed: 1);
        long nodes;
        using (var scope = TorchSharp.torch.NewDisposeScope())
        {
            var (z, logQ) = model.Sample(256, new TorchSharp.torch.Generator(1));
            _ = (target.Evaluate(z) - logQ).mean();
            nodes = scope.DisposablesView.OfType<TorchSharp.torch.Tensor>().Count(t => t.requires_grad && !t.is_leaf);
        }
        return new OperationCount(perStep, 1, nodes);
    }

    private static OperationCount? CountPeer(string python, string counter, string script, string library,
        (string Target, string PeerTarget, int Dimension, string Flow, string PeerFlow, int Layers) row)
    {
        var run = PythonProcess.Run(python, new[] { counter, script, "--lib", library, "--flow", row.PeerFlow, "--dim", row.Dimension.ToString(CultureInfo.InvariantCulture),
                "--layers", row.Layers.ToString(CultureInfo.InvariantCulture), "--target", row.PeerTarget },
            new Dictionary<string, string> { ["OPENBLAS_NUM_THREADS"] = "1", ["OMP_NUM_THREADS"] = "1" });
        if (run is not var (exitCode, output, errors)) return null;
        var counts = Regex.Match(output, @"OPS new=(\d+) inplace=(\d+) nodes=(\d+)");
        if (exitCode == 0 && counts.Success)
            return new OperationCount(long.Parse(counts.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(counts.Groups[2].Value, CultureInfo.InvariantCulture),
                long.Parse(counts.Groups[3].Value, CultureInfo.InvariantCulture));
        Console.Error.WriteLine($"  {library} {row.PeerFlow} d={row.Dimension} failed (exit {exitCode}): {errors.Trim().Split('\n').LastOrDefault()}");
        return null;
    }

    private static string Show(double? value) => value is double v ? v.ToString("F2", CultureInfo.InvariantCulture) : "failed";

    private static double Ours(string targetName, string flow, int layers, int iterations)
    {
        var target = TargetGallery.Create(targetName);
        double best = double.MaxValue;
        for (int rep = 0; rep < 3; rep++)
        {
            var q = FlowFactory.Create(flow, target.Dimension, layers, seed: 1);
            var process = Process.GetCurrentProcess();
            var cpu = process.TotalProcessorTime;
            VariationalTrainer.Fit(q, target, new TrainerOptions { Iterations = iterations, BatchSize = 256, LearningRate = 1e-3, Threads = 1, ReportEvery = iterations, Seed = 1 });
            process.Refresh();
            best = Math.Min(best, (process.TotalProcessorTime - cpu).TotalMilliseconds / iterations);
        }
        return best;
    }

    private static double? Peer(string python, string script, string library, string flow, int dimension, int layers, string target, int iterations)
    {
        // One thread on their side too: OpenBLAS would otherwise add its own threads to the CPU time.
        var run = PythonProcess.Run(python, new[] { script, "--lib", library, "--flow", flow, "--dim", dimension.ToString(CultureInfo.InvariantCulture),
                "--layers", layers.ToString(CultureInfo.InvariantCulture), "--target", target, "--iters", iterations.ToString(CultureInfo.InvariantCulture) },
            new Dictionary<string, string> { ["OPENBLAS_NUM_THREADS"] = "1", ["OMP_NUM_THREADS"] = "1" });
        if (run is not var (exitCode, output, errors)) return null;
        var cpu = Regex.Match(output, @"cpu_ms_per_step=([0-9.]+)");
        if (exitCode == 0 && cpu.Success) return double.Parse(cpu.Groups[1].Value, CultureInfo.InvariantCulture);
        Console.Error.WriteLine($"  {library} {flow} d={dimension} failed (exit {exitCode}): {errors.Trim().Split('\n').LastOrDefault()}");
        return null;
    }
}
